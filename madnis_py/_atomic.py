"""Atomic file writes: every file the package writes appears complete or not at all.

A write goes to a temporary file created exclusively (``O_CREAT | O_EXCL``, a random
name, ``tempfile.mkstemp``) in the target's directory, so a planted symlink or a file of
another process at a predictable ``<name>.tmp`` is never followed or overwritten; it is
flushed, ``fsync``-ed and renamed onto the target with ``os.replace`` (atomic on POSIX).
On any failure, ``KeyboardInterrupt`` included, the temporary is removed and the error
re-raised; an ``OSError`` (disk full, quota, I/O error, read-only file system) becomes one
:class:`FileWriteError` line naming the target, e.g. ``cannot write checkpoint
/x/checkpoint.pt: No space left on device``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["CheckpointWriteError", "FileWriteError", "atomic_write", "torch_save_atomic",
           "write_bytes_atomic", "write_text_atomic"]


def _umask() -> int:
    # mkstemp creates the file 0600; the target gets the mode a plain open() would give.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


class FileWriteError(OSError):
    """A file could not be written; the message names it and the reason (``errno`` kept)."""


class CheckpointWriteError(FileWriteError):
    """A checkpoint could not be written (disk full, permissions, I/O error)."""


def _error(err: OSError, path: Path, what: str,
           cls: type[FileWriteError]) -> FileWriteError:
    reason = err.strerror or str(err) or type(err).__name__
    out = cls(f"cannot write {what} {path}: {reason}")
    out.errno = err.errno  # not filename: OSError would print "[Errno n] None: path"
    return out


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; not every platform or file system can."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, what: str = "file",
                 error: type[FileWriteError] = FileWriteError,
                 encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """A file object (``mode`` ``"wb"`` or ``"w"``) whose content replaces ``path`` when
    the block ends without an error; ``what`` names the file in error messages."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="." + target.name + ".",
                                   suffix=".tmp")
    except OSError as err:
        raise _error(err, target, what, error) from err
    done = False
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, _MODE)
            fh: IO[Any] = os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        done = True
    except FileWriteError:
        raise
    except OSError as err:
        raise _error(err, target, what, error) from err
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(target.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, what: str = "file",
                       error: type[FileWriteError] = FileWriteError) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_write(path, "wb", what=what, error=error) as fh:
        fh.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, what: str = "file",
                      error: type[FileWriteError] = FileWriteError) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see the module docstring)."""
    with atomic_write(path, "w", what=what, error=error) as fh:
        fh.write(text)


def torch_save_atomic(obj: object, path: str | os.PathLike[str], *,
                      what: str = "checkpoint",
                      error: type[FileWriteError] = CheckpointWriteError) -> None:
    """``torch.save(obj)`` to ``path`` atomically. The archive is built in memory first, so
    that a full disk is a plain ``OSError`` of the write (torch's own writer would report
    it as ``enforce fail at inline_container.cc``)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue(), what=what, error=error)
