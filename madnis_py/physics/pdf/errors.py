"""The exceptions of the PDF package: one base class, a set that is not found, a malformed file."""

from __future__ import annotations

import os

__all__ = ["PDFError", "PDFGridFormatError", "PDFSetNotFoundError"]


class PDFError(Exception):
    """Base class of the errors raised by this module."""


class PDFSetNotFoundError(PDFError, FileNotFoundError):
    """A PDF set (or member, or LHAPDF ID) that is in none of the searched places."""


class PDFGridFormatError(PDFError, ValueError):
    """A malformed ``.info`` or ``.dat`` file; ``path`` and ``line`` locate the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
