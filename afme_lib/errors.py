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
