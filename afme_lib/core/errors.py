"""Errors the workbench raises for bad input, each naming where the problem is."""

from __future__ import annotations

from pathlib import Path


class AfmeError(Exception):
    """Base class for every error the workbench raises on purpose."""


class DataFormatError(AfmeError, ValueError):
    """A data or feature file is malformed; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


class DownloadError(AfmeError):
    """A download failed or its content does not match the pinned sha256."""


class OptionError(AfmeError, ValueError):
    """A configuration option has a value it does not allow, alone or with another option.

    The message names the option as the caller spelled it: ``spell`` maps a field name to that
    spelling (the CLI gives ``--epochs``, notebooks ``epochs``). ``problem`` may name other
    options as ``{field}`` placeholders, spelled the same way; ``{`` and ``}`` in values are
    doubled (:func:`literal`)::

        OptionError("epochs", "must be >= 0 (got -3)").render(cli_spelling) == "--epochs must be >= 0 (got -3)"
    """

    def __init__(self, option: str, problem: str, spell=None):
        self.option, self.problem = option, problem
        super().__init__(self.render(spell or (lambda name: name)))

    def render(self, spell) -> str:
        """The message with this option and every ``{field}`` of the problem spelled by ``spell``."""
        return f"{spell(self.option)} {self.problem.format_map(_Spelled(spell))}"

    def respelled(self, spell) -> OptionError:
        """The same error, its message spelling option names by ``spell`` (raise it ``from None``)."""
        return OptionError(self.option, self.problem, spell)


class _Spelled(dict):
    def __init__(self, spell):
        super().__init__()
        self.spell = spell

    def __missing__(self, key: str) -> str:
        return self.spell(key)


def literal(value) -> str:
    """``repr(value)`` safe to embed in an :class:`OptionError` problem (braces doubled)."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def did_you_mean(word: str, names) -> str:
    """`` (did you mean 'x'?)`` naming up to three of ``names`` close to ``word`` (difflib, case
    ignored); "" when none is. ``names`` may map each spelling to the name to show (aliases)."""
    import difflib

    shown = dict(names) if isinstance(names, dict) else {n: n for n in names}
    by_fold = {str(n).casefold(): str(v) for n, v in shown.items()}
    key = str(word).casefold()
    # A name the word starts with (dimension -> dim) or that starts with it, then difflib's close ones.
    prefixed = [n for n in by_fold if len(n) >= 3 and len(key) >= 3 and (key.startswith(n) or n.startswith(key))]
    close = prefixed + difflib.get_close_matches(key, list(by_fold), n=5, cutoff=0.6)
    picks = list(dict.fromkeys(by_fold[c] for c in close))[:3]
    return " (did you mean " + " or ".join(map(repr, picks)) + "?)" if picks else ""
