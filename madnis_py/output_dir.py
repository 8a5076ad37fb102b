"""The output directory of one run: checked before any work, locked while the run lasts.

A run writes its files (events, checkpoint, history, plots) into one directory and
``summary.json`` last: a directory with a summary holds a finished run, and the summary
names the files that belong to it. :class:`RunDirectory` makes that safe:

- **before any work** it checks that the directory can be made and written, that its name
  encodes (a name that is not valid UTF-8 would lose the events when the LHE file is
  closed) and that no output file name is taken by a directory;
- it takes an **exclusive lock** (``fcntl.flock`` on ``.madnis-py.lock`` in the directory):
  a second run on the same directory is refused at once, not mixed with the first;
- a directory that holds a **finished run** (``summary.json``) is refused unless
  ``force=True``, which removes the old summary first, so that an interrupted rerun never
  leaves a summary beside files of another run;
- **temporaries of a dead run** (the hidden ``.<name>.*`` files the atomic writers and the
  LHE writer create) are removed, and how many is reported;
- a run that fails before writing anything leaves **no empty directory** behind.

The choice (refuse, or replace with ``--force``) is documented in the README; runs that
should be kept go to their own ``--output``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["OutputDirectoryError", "RunDirectory", "LOCK_NAME", "SUMMARY_NAME"]

LOCK_NAME = ".madnis-py.lock"
SUMMARY_NAME = "summary.json"


class OutputDirectoryError(RuntimeError):
    """The output directory cannot be used; one line naming it and why."""


class RunDirectory:
    """Context manager holding one run's output directory (see the module docstring).

    Parameters
    ----------
    path : the output directory
    outputs : the file names the run will write there (the LHE file, the checkpoint, ...)
    force : replace a finished run instead of refusing the directory
    """

    def __init__(self, path: str | os.PathLike[str], outputs: Iterable[str], *,
                 force: bool = False) -> None:
        self.path = Path(path)
        self.outputs = tuple(dict.fromkeys([*outputs, SUMMARY_NAME]))
        self.force = force
        self.created = False
        self.removed_temporaries: list[Path] = []
        self._fd: int | None = None

    # ------------------------------------------------------------------ checks
    def _check_name(self) -> None:
        try:
            os.fspath(self.path).encode("utf-8")
        except UnicodeEncodeError as err:
            raise OutputDirectoryError(
                f"output directory {self.path!r}: the name is not valid UTF-8 ({err.reason}); "
                "choose a name the LHE file can record") from err
        for name in self.outputs:
            target = self.path / name
            if target.is_dir():
                raise OutputDirectoryError(f"{target} is a directory; the run writes a file "
                                           "there (choose another name or --output)")

    def __enter__(self) -> RunDirectory:
        self._check_name()
        if self.path.exists() and not self.path.is_dir():
            raise OutputDirectoryError(f"output directory {self.path} is a file")
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as err:
                raise OutputDirectoryError(f"cannot create the output directory {self.path}: "
                                           f"{err.strerror or err}") from err
            self.created = True
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            self._remove_if_created()
            raise OutputDirectoryError(f"output directory {self.path} is not writable: "
                                       f"{err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            raise OutputDirectoryError(f"output directory {self.path} is in use by another "
                                       "madnis-py run (it holds the lock); wait for it or "
                                       "choose another --output") from err
        self._fd = fd
        try:
            self._check_writable()
            self._check_finished()
            self._remove_temporaries()
        except BaseException:
            self._release()
            self._remove_if_created()
            raise
        return self

    def _check_writable(self) -> None:
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise OutputDirectoryError(f"output directory {self.path} is not writable")

    def _check_finished(self) -> None:
        summary = self.path / SUMMARY_NAME
        if not summary.exists():
            return
        if not self.force:
            raise OutputDirectoryError(
                f"output directory {self.path} holds a finished run ({SUMMARY_NAME}); "
                "choose another --output, or pass --force to replace it")
        summary.unlink()

    def _remove_temporaries(self) -> None:
        prefixes = tuple(f".{name}." for name in self.outputs)
        for entry in self.path.iterdir():
            if entry.name.startswith(prefixes) and (entry.is_file() or entry.is_symlink()):
                entry.unlink()
                self.removed_temporaries.append(entry)

    # ------------------------------------------------------------------ release
    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _remove_if_created(self) -> None:
        """Remove the directory this run made if nothing but the lock is in it."""
        if not self.created or not self.path.is_dir():
            return
        left = [p.name for p in self.path.iterdir() if p.name != LOCK_NAME]
        if not left:
            shutil.rmtree(self.path, ignore_errors=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # The lock file stays (hidden): removing it would let a run that opened it before
        # the removal and one that creates a new one both hold "the" lock.
        self._release()
        if exc_type is not None:
            self._remove_if_created()
