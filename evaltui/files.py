"""Files the user names: read only when safe to, written without harm.

Reading: only regular files are read. A named pipe would block the reader,
and a device such as `/dev/zero` never ends. The checks use `os.stat`, which
does not open the file, so they cannot block either; sizes are limited.

Writing: every command that writes a file (`export labels`, `rubric export`,
`judge approve`) goes through `replacing`: it never writes over a DuckDB file,
nor over a file of another kind than the one it writes, nor over any existing
file unless `--force` was given; and it writes beside the target and renames,
so a failed write leaves the old file (or nothing), never half a file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltui.errors import DiskFull, InvalidInput, SchemaError, WriteRefused

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
            raise SchemaError(f"{candidate}: is a folder, not a project file")
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


DUCKDB_MAGIC = b"DUCK"
"""The bytes at offset 8 of every DuckDB database file."""

SQLITE_MAGIC = b"SQLite format 3\0"
"""The first bytes of every SQLite database file."""

_SNIFF = 64 * 1024
_TOML_LIMIT = 1024 * 1024


def head(path: Path, size: int = _SNIFF) -> bytes:
    """The first `size` bytes of a file; b"" when it cannot be read."""
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""


def is_duckdb(data: bytes) -> bool:
    """Whether a file starting with `data` is a DuckDB database."""
    return data[8:12] == DUCKDB_MAGIC


def database_kind(data: bytes) -> str | None:
    """'DuckDB' or 'SQLite' for a file starting with `data` that is such a database, else None."""
    if is_duckdb(data):
        return "DuckDB"
    if data.startswith(SQLITE_MAGIC):
        return "SQLite"
    return None


def _text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        # A sniff cut short may end inside a character.
        return error.start >= len(data) - 3
    return True


def _toml(path: Path, data: bytes) -> bool:
    if not _text(data) or path.stat().st_size > _TOML_LIMIT:
        return False
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError):
        return False
    return True


def _json_lines(path: Path, data: bytes) -> bool:
    return _text(data) and data.lstrip()[:1] in (b"{", b"[", b"")


def _csv(path: Path, data: bytes) -> bool:
    return _text(data)


def _parquet(path: Path, data: bytes) -> bool:
    return data.startswith(b"PAR1")


@dataclass(frozen=True)
class Kind:
    """A kind of file evaltui writes: its name, suffixes, and how to recognise one."""

    name: str
    suffixes: tuple[str, ...]
    looks_like: Callable[[Path, bytes], bool]

    def holds(self, path: Path, data: bytes) -> bool:
        """Whether the existing file at `path` (starting with `data`) is of this kind."""
        if path.suffix.lower() not in self.suffixes:
            return False
        return not data or self.looks_like(path, data)


TOML = Kind("TOML", (".toml",), _toml)
JSON_LINES = Kind("JSON", (".jsonl", ".json", ".ndjson"), _json_lines)
CSV = Kind("CSV", (".csv", ".tsv"), _csv)
PARQUET = Kind("Parquet", (".parquet", ".pq"), _parquet)


def refuse_folder(path: Path) -> None:
    """Refuse a folder given where a file to write is expected."""
    if path.is_dir():
        raise WriteRefused(f"{path} is a folder; give the name of a file to write")


def replaceable(path: Path, kind: Kind) -> bool:
    """Whether `path` is an existing file of `kind` (one that `--force` would replace)."""
    if not path.is_file():
        return False
    data = head(path)
    if not data and path.stat().st_size > 0:
        return False  # unreadable: its kind is unknown
    return database_kind(data) is None and kind.holds(path, data)


def make_folder(folder: Path) -> None:
    """Create `folder` (and its parents) for a file to be written into."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteRefused(f"cannot make the folder {folder}: {error.strerror or error}") from None


def check_target(path: Path, kind: Kind, *, force: bool, new_folder: bool = False) -> None:
    """Refuse, with a sentence, to write `kind` to `path` where that would do harm.

    `new_folder`: the caller makes a missing folder for the file before writing it.
    """
    refuse_folder(path)
    if ".wal" in (suffix.lower() for suffix in path.suffixes):
        # DuckDB would read such a file beside a project as the project's log.
        raise WriteRefused(
            f"{path} is named like a DuckDB write-ahead log (.wal); give another file name"
        )
    if not path.exists():
        folder = path.parent
        if folder.is_dir() or (new_folder and not folder.exists()):
            return
        raise WriteRefused(
            f"{folder} is not a folder" if folder.exists() else f"{folder}: no such folder"
        )
    data = head(path)
    database = database_kind(data)
    if database is not None:
        what = (
            "a DuckDB database (a project file?)" if database == "DuckDB" else "an SQLite database"
        )
        raise WriteRefused(
            f"{path} is {what}; evaltui never writes over one, not even with --force: "
            "give another file name"
        )
    if not replaceable(path, kind):
        raise WriteRefused(
            f"{path} exists and is not a {kind.name} file; evaltui will not replace it, "
            "not even with --force: give another file name"
        )
    if not force:
        raise WriteRefused(f"{path} exists; give --force to replace it")


@contextmanager
def replacing(path: Path | str, kind: Kind, *, force: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write `kind` to; renamed over `path` on success.

    The target is checked first (`check_target`) and again just before the
    rename. On any error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    check_target(path, kind, force=force)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        check_target(path, kind, force=force)
        if path.exists():
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    except DiskFull:  # it names the temporary file: say which file the user asked for
        raise DiskFull(f"the disk holding {path} is full: free some space and try again") from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"the disk holding {path} is full: free some space and try again"
            ) from None
        raise InvalidInput(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)


def parse_toml(text: str, source: str, *, what: str = "") -> dict[str, Any]:
    """TOML text as data; a syntax error or a nesting too deep to read is one sentence."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        kind = f"a valid TOML {what}" if what else "valid TOML"
        raise InvalidInput(f"{source}: not {kind}: {e}") from None
    except RecursionError:
        raise InvalidInput(
            f"{source}: the TOML nests arrays or tables too deep to read "
            "(hundreds of levels inside each other)"
        ) from None


def read_text(path: Path, what: str) -> str:
    """The text of a file the user named (`what` it should be); a missing file or a folder
    is one sentence."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder, not a {what}")
    check_file(path, limit=TEXT_LIMIT, what=f"a {what}")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read it: {e.strerror or e}") from None


def write_text(path: Path | str, text: str, kind: Kind, *, force: bool = False) -> None:
    """Write `text` to `path` through `replacing`."""
    with (
        replacing(path, kind, force=force) as temporary,
        temporary.open("x", encoding="utf-8") as f,
    ):
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
