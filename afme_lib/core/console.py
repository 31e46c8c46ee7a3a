"""How progress is shown: live bars where a person watches, plain lines where output is kept.

One decision, per output stream, used by training, evaluation, feature extraction, downloads
and the grid runner:

- progress bars (tqdm, carriage returns) go to stderr, and only when stderr is a terminal or
  the code runs in a Jupyter kernel (tqdm.auto draws a widget there);
- progress *lines* (one per epoch, per chunk ...) go to stdout, and only when stdout is *not*
  a terminal or a notebook: a log file or a pipe.

So ``afme train ... > train.log`` writes one line per epoch into the file and still shows bars on
the terminal; ``> train.log 2>&1`` keeps lines only; an interactive run shows bars only.
``enabled=False`` (``--no-progress``, ``progress=False``) silences both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm.auto shows widget bars)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has it loaded already
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def interactive(stream: TextIO) -> bool:
    """Whether a person watches ``stream`` live: a terminal, or a notebook's output."""
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        tty = False
    return tty or in_notebook()


def bars(enabled: bool = True) -> bool:
    """Whether progress bars are drawn (on stderr)."""
    return enabled and interactive(sys.stderr)


def lines(enabled: bool = True) -> bool:
    """Whether progress lines are printed (on stdout)."""
    return enabled and not interactive(sys.stdout)


def progress_bar(iterable=None, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr when :func:`bars` says so, else a silent one (same interface)."""
    return tqdm(iterable, disable=not bars(enabled), **kwargs)


def log_line(text: str, enabled: bool = True) -> None:
    """Print one progress line on stdout when :func:`lines` says so (flushed: logs are read live)."""
    if lines(enabled):
        print(text, flush=True)


def duration(seconds: float) -> str:
    """``h:mm:ss`` (``m:ss`` under an hour)."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def display_path(path) -> str:
    """``path`` relative to the working directory when under it (a report or a printed command
    stays readable and portable), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
