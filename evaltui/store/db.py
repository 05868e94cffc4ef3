"""Opening a project file: one DuckDB connection per process, migrated to the current schema."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb

from evaltui.errors import DiskFull, ProjectLocked, SchemaError
from evaltui.files import check_project_file
from evaltui.store.schema import MIGRATIONS, SCHEMA_VERSION

_IGNORE_TRIES = 20
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded")
_UNWRITTEN = re.compile(r'Could not write file "(?P<file>[^"]*)"')


class Cursor(Protocol):
    """What the store needs of a cursor: DuckDB's own, or the server backing's."""

    @property
    def description(self) -> Any:
        """Column names and types of the last result."""

    def execute(self, sql: str, params: Any = None, /) -> Cursor:
        """Run one statement."""

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows."""

    def close(self) -> None:
        """Release the cursor."""


class Connection(Protocol):
    """What the store needs of a connection."""

    def cursor(self) -> Any:
        """A new cursor (a `Cursor`)."""

    def close(self) -> None:
        """Close the connection."""


def now() -> datetime:
    """The current time in UTC, without tzinfo: every stored time is UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def _process_words(pid: int) -> list[str]:
    """The command line of a running process as its words, or [] when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _served_at(words: list[str]) -> str | None:
    """The address an `evaltui serve` command line listens on; None for any other command.

    >>> _served_at(["python", "-m", "evaltui", "serve", "x.duckdb", "--port", "9500"])
    'quack:localhost:9500'
    """
    if "serve" not in words or not any("evaltui" in word for word in words):
        return None
    options = {"--host": "localhost", "--port": "9494"}
    rest = words[words.index("serve") + 1 :]
    for at, word in enumerate(rest):
        name, _, value = word.partition("=")
        if name in options:
            options[name] = value or (rest[at + 1] if at + 1 < len(rest) else options[name])
    host = options["--host"]
    if host in ("0.0.0.0", "::"):
        host = "localhost"
    return f"quack:{host}:{options['--port']}"


def locked_message(path: Path, error: duckdb.Error) -> str:
    """A plain sentence naming the process that holds `path` and what to do instead."""
    match = _LOCK_HOLDER.search(str(error))
    words: list[str] = []
    holder = "another process"
    if match is not None:
        pid = int(match["pid"])
        words = _process_words(pid)
        command = " ".join(" ".join(words).split()) or match["program"]
        command = command if len(command) <= 80 else command[:77] + "..."
        holder = f"another process (PID {pid}: {command})"
    served = _served_at(words)
    if served is not None and match is not None:
        return (
            f"{path} is being served by 'evaltui serve' (PID {match['pid']}); "
            f"connect to it instead: EVALTUI_TOKEN=TOKEN evaltui --db {served}, with the "
            "token serve printed for you"
        )
    return (
        f"{path} is open in {holder}; a project file can be opened by one process at a time. "
        f"To label together, serve it with 'evaltui serve {path}' and connect to the server."
    )


def no_space(error: Exception) -> bool:
    """Whether DuckDB's error says a disk (or a quota) is full."""
    return _NO_SPACE.search(str(error)) is not None


def disk_full(error: Exception, project: Path | str) -> DiskFull | None:
    """The error as DiskFull when DuckDB failed for want of space (ENOSPC, EDQUOT); else None.

    DuckDB says so in the message, e.g. `TransactionContext Error: Failed to commit:
    Could not write file "evals.duckdb.wal": No space left on device`. A write that
    fails so is rolled back whole: nothing of it was stored.

    >>> str(disk_full(duckdb.IOException('Could not write file "x.duckdb.wal": '
    ...     'No space left on device'), "x.duckdb"))
    'the disk holding x.duckdb is full: free some space and try again (the write that failed stored nothing)'
    """
    if not no_space(error):
        return None
    unwritten = _UNWRITTEN.search(str(error))
    if unwritten and not Path(unwritten["file"]).name.startswith(Path(project).name):
        return export_disk_full(unwritten["file"])  # another file: an export, say
    return DiskFull(
        f"the disk holding {project} is full: free some space and try again "
        "(the write that failed stored nothing)"
    )


def export_disk_full(target: Path | str) -> DiskFull:
    """DiskFull for a file being written outside the project (an export)."""
    return DiskFull(f"the disk holding {target} is full: free some space and try again")


class FileConnection:
    """A project file's DuckDB connection whose cursors turn a full disk into DiskFull."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | str) -> None:
        self._con = con
        self.path = path

    def cursor(self) -> FileCursor:
        """A new cursor on the connection."""
        return FileCursor(self._con.cursor(), self.path)

    def close(self) -> None:
        """Close the connection (a checkpoint folds the WAL into the file)."""
        self._con.close()


class FileCursor:
    """A DuckDB cursor whose `execute` raises DiskFull, a sentence, when the disk is full."""

    __slots__ = ("_cur", "_path")

    def __init__(self, cur: duckdb.DuckDBPyConnection, path: Path | str) -> None:
        self._cur = cur
        self._path = path

    def execute(self, sql: str, params: Any = None, /) -> FileCursor:
        """Run one statement."""
        try:
            self._cur.execute(sql, params)
        except duckdb.Error as error:
            full = disk_full(error, self._path)
            if full is not None:
                raise full from None
            raise
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)  # fetchone, fetchall, description, close ...


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file at `path`, turning a lock held elsewhere into ProjectLocked."""
    target = str(path)
    check_project_file(path)  # a named pipe would block DuckDB's open
    try:
        return duckdb.connect(target, read_only=read_only)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise ProjectLocked(locked_message(Path(path), error)) from None
        raise SchemaError(f"cannot open {path}: {error}") from None
    except duckdb.Error as error:
        raise SchemaError(f"{path} is not a DuckDB project file ({error})") from None


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The recorded schema version; 0 for an empty file; None for a foreign database."""
    cur = con.cursor()
    tables = {row[0] for row in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" in tables:
        row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None
    return 0 if not tables else None


def migrate(
    con: duckdb.DuckDBPyConnection, path: Path | str, *, target: int = SCHEMA_VERSION
) -> int:
    """Apply the migrations after the file's version up to `target`; return the version reached."""
    version = schema_version(con)
    if version is None:
        raise SchemaError(f"{path} is a DuckDB file but not an evaltui project")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path} was written by a newer evaltui (schema {version}; this one reads up to "
            f"{SCHEMA_VERSION}); upgrade evaltui to open it"
        )
    cur = con.cursor()
    for number in range(version + 1, target + 1):
        cur.execute("BEGIN TRANSACTION")
        try:
            if number == 1:
                cur.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
                cur.execute("INSERT INTO meta VALUES ('schema_version', '0')")
            for statement in MIGRATIONS[number - 1]:
                cur.execute(statement)
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(number)])
            cur.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [f"migrated_{number}_at", now().isoformat()],
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return max(version, target)


def insert_or_ignore(cur: Cursor, sql: str, params: Sequence[object]) -> None:
    """Run an `INSERT OR IGNORE`, again when another writer inserted the same key meanwhile.

    A key that a statement running at the same time inserts is not ignored:
    DuckDB fails one of the two statements whole on a duplicate key (at commit
    on a file, at once on a server), and run again it ignores the key. For a
    statement on its own: inside a transaction the failure ends the transaction.
    """
    pause = 0.005
    for tries_left in range(_IGNORE_TRIES - 1, -1, -1):
        try:
            cur.execute(sql, list(params))
            return
        except duckdb.Error as error:  # the server backing passes the server's error on
            if "duplicate key" not in str(error).lower() or not tries_left:
                raise
        time.sleep(pause)  # the other statement commits meanwhile
        pause = min(2 * pause, 0.2)


@contextmanager
def transaction(con: Connection) -> Iterator[Cursor]:
    """A cursor inside one transaction: committed on success, rolled back on any error."""
    cur = con.cursor()
    cur.execute("BEGIN TRANSACTION")
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    else:
        cur.execute("COMMIT")
    finally:
        cur.close()
