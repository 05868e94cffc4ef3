"""Files named on the command line, checked before anything opens them.

Only regular files are read: a named pipe would block the reader, and a
device such as `/dev/zero` never ends. The checks use `os.stat`, which does
not open the file, so they cannot block either.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from evaltui.errors import InvalidInput

DATA_LIMIT = 2 * 1024**3
"""The largest file of cases, labels or verdicts evaltui reads (2 GiB)."""
TEXT_LIMIT = 16 * 1024**2
"""The largest TOML file (rubric, config) or prompt file evaltui reads (16 MiB)."""


@dataclass(frozen=True)
class Stamp:
    """What a file looked like when it was checked: enough to tell that it has changed."""

    device: int
    inode: int
    size: int
    modified_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> Stamp:
        """The stamp of a `stat` result."""
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def check_file(path: Path, *, limit: int = DATA_LIMIT, what: str = "an import file") -> Stamp:
    """Refuse anything but an existing regular file of at most `limit` bytes; return its stamp.

    `what` names the kind of file in the size message ("a TOML file", ...).
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidInput(f"{path}: no such file") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(
            f"{path}: is {_file_kind(info.st_mode)}, not a regular file; evaltui reads "
            "regular files only"
        )
    if info.st_size > limit:
        raise InvalidInput(
            f"{path}: is {info.st_size:,} bytes, over the {_size(limit)} limit for {what}"
        )
    return Stamp.of(info)


def check_changed(path: Path, stamp: Stamp) -> None:
    """Raise InvalidInput when `path` is no longer the file that was checked (stamp differs)."""
    try:
        now = Stamp.of(os.stat(path))
    except OSError:
        now = None
    if now != stamp:
        raise InvalidInput(
            f"{path}: the file changed while it was being read; nothing was imported "
            "(import it again once it is complete)"
        )


def check_project_file(path: Path | str) -> None:
    """Refuse a project path (or its write-ahead log) that exists but is not a regular file.

    A missing file is fine: opening the project creates it.
    """
    for candidate in (Path(path), Path(f"{path}.wal")):
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInput(f"{candidate}: is a folder, not a project file")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(
                f"{candidate}: is {_file_kind(info.st_mode)}, not a regular file; a project "
                "is a DuckDB file"
            )


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _size(count: int) -> str:
    """A byte count for people.

    >>> _size(2 * 1024**3), _size(16 * 1024**2), _size(1536), _size(12)
    ('2 GiB', '16 MiB', '1.5 KiB', '12 bytes')
    """
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"
