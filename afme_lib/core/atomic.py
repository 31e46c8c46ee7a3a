"""Publishing files and folders atomically: a reader (or a kill -9) never sees half of one.

Every writer here works the same way: the content goes to a temporary name in the target's own
folder (so the final rename stays on one file system, where ``os.replace`` / ``os.rename`` are
atomic), and only a complete temporary is renamed onto the target. Temporary names are unique
per writer (``tempfile``), so two processes publishing the same file never write into one
temporary; the last rename wins and each of them wrote a whole file. A failed write removes its
temporary and leaves the previous target untouched.

- :func:`replacing`: the general form, a context manager yielding the temporary path;
- :func:`write_text`, :func:`write_json`, :func:`save` (``torch.save``): one-line uses of it;
- :func:`publish_folder`: the same for a whole folder, tolerating parallel writers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to write; when the block ends
    normally it is renamed onto ``path``, when it raises it is removed (and ``path`` keeps its
    previous content)."""
    path = Path(path)
    # Unique per process and call; not created here (mkstemp would make it owner-only, 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # still there only when the block failed


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json(path: str | Path, payload, indent: int | None = 2) -> None:
    """``payload`` as JSON (one trailing newline)."""
    write_text(path, json.dumps(payload, indent=indent) + "\n")


def save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)``, atomically (checkpoints, feature chunks)."""
    import torch  # here, not at the top: the JSON writers are used where torch is not needed

    with replacing(path) as tmp:
        torch.save(obj, tmp)


def publish_folder(folder: str | Path, write: Callable[[Path], None], complete: Callable[[Path], bool]) -> Path:
    """Build ``folder`` once: ``write(tmp)`` fills a temporary folder beside it, which is then
    renamed into place. ``complete(path)`` tells a finished folder from a stale or half-written
    one (e.g. a stamp file with the expected content).

    A complete ``folder`` is returned as is, before and after writing: when a parallel writer
    finished first its copy is kept (another process may be reading it) and ours is dropped.
    An incomplete one (left by a kill, or made by another version) is replaced.
    """
    folder = Path(folder)
    if complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        if complete(folder):
            return folder
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # a parallel writer renamed its copy in between
            if not complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
