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

from evaltui.errors import DiskFull, ProjectDamaged, ProjectLocked, SchemaError
from evaltui.files import check_project_file, database_kind, head
from evaltui.store.schema import MIGRATIONS, SCHEMA_VERSION

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_IGNORE_TRIES = 20
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


def short_command(words: list[str]) -> str:
    """A command line for a message: its words on one line, at most 80 characters.

    >>> short_command(["python", "-m", "evaltui", "serve"])
    'python -m evaltui serve'
    """
    command = " ".join(" ".join(words).split())
    return command if len(command) <= 80 else command[:77] + "..."


def process_words(pid: int) -> list[str]:
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
        words = process_words(pid)
        command = short_command(words) or match["program"]
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


NO_DOWNLOADS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""Settings of every DuckDB connection evaltui opens: DuckDB never fetches or loads an
extension on its own (a file that needs one is refused instead)."""

STORAGE_VERSION = "v1.4.0"
"""DuckDB's storage format for new project files: the first whose WAL records the file
it belongs to and its checkpoint, so DuckDB refuses to replay another file's WAL."""


def open_duckdb(
    database: str = ":memory:", *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with `NO_DOWNLOADS`; a new database file gets `STORAGE_VERSION`."""
    config = dict(NO_DOWNLOADS)
    if database != ":memory:":
        config["storage_compatibility_version"] = STORAGE_VERSION
    return duckdb.connect(database, read_only=read_only, config=config)


def _duckdb_words(error: duckdb.Error) -> str:
    """DuckDB's own first line, without its error-class prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^[A-Za-z ]+ Error: ", "", text)


def _refers_to(text: str, path: Path) -> bool:
    """Whether a DuckDB message about a file names the file at `path`."""
    match = re.search(r'file "(?P<file>[^"]*)"', text)
    if match is None:
        return True
    try:
        return Path(match["file"]).resolve() == path.resolve()
    except OSError:
        return False


def damage(path: Path, error: duckdb.Error) -> ProjectDamaged | None:
    """The damage a DuckDB error reports in the project file at `path`, as a sentence; else None."""
    text = str(error)
    words = re.sub(r'^Failure while replaying WAL file "[^"]*": ', "", _duckdb_words(error))
    wal = f"{path}.wal"
    aside = f"move it aside (mv {wal} {wal}.aside) to open {path} as of its last checkpoint"
    if "WAL does not match database file" in text:
        return ProjectDamaged(
            f"{wal} does not belong to {path} (DuckDB: the WAL does not match the database "
            f"file): it was left there from another project; {aside}"
        )
    if "WAL checkpoint iteration does not match" in text:
        which = "an older" if "older version" in text else "a newer"
        return ProjectDamaged(
            f"{wal} was written for {which} copy of {path} (DuckDB: its checkpoint iteration "
            f"does not match the file's); {aside}"
        )
    if "Failure while replaying WAL file" in text:
        return ProjectDamaged(
            f"{wal} is damaged (DuckDB: {words}); {aside}, leaving out the writes made "
            "since then, which only the WAL holds"
        )
    if "Could not read enough bytes from file" in text and _refers_to(text, path):
        return ProjectDamaged(
            f"{path} is damaged: it is shorter than DuckDB expects, as if truncated "
            f"(DuckDB: {words}); restore it from a backup"
        )
    if "Corrupt database file" in text or "not a valid DuckDB database file" in text:
        return ProjectDamaged(
            f"{path} is damaged (DuckDB: {words}); DuckDB cannot repair it: restore it from a backup"
        )
    return None


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


def _check_file(path: Path) -> None:
    """Refuse, before DuckDB sees it, anything at `path` that is not a DuckDB file."""
    if path.is_dir():
        raise SchemaError(f"{path} is a folder, not a project file")
    if not path.exists():
        return
    data = head(path, 16)
    kind = database_kind(data)
    if kind == "DuckDB":
        return
    what = (
        f"an {kind} database" if kind else ("an empty file" if not data else "another kind of file")
    )
    raise SchemaError(f"{path} is not a DuckDB project file: it is {what}")


def connect(path: Path | str, *, read_only: bool = False) -> ProjectConnection:
    """Open the DuckDB project file at `path`.

    A lock held elsewhere becomes ProjectLocked; a damaged file or WAL,
    ProjectDamaged; a file that is not DuckDB's, SchemaError.
    """
    path = Path(path)
    check_project_file(path)  # a named pipe would block DuckDB's open
    _check_file(path)
    try:
        con = open_duckdb(str(path), read_only=read_only)
    except duckdb.Error as error:
        if "Could not set lock on file" in str(error):
            raise ProjectLocked(locked_message(path, error)) from None
        damaged = damage(path, error)
        if damaged is not None:
            raise damaged from None
        raise SchemaError(f"cannot open {path}: {_duckdb_words(error)}") from None
    return ProjectConnection(con, path)


class ProjectCursor:
    """A cursor on a project file: damage a query finds is ProjectDamaged, a full disk DiskFull."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._cur = cur
        self._path = path

    @property
    def description(self) -> Any:
        """Column names and types of the last result."""
        return self._cur.description

    def _damage(self, error: duckdb.IOException) -> BaseException:
        return damage(self._path, error) or error

    def execute(self, sql: str, params: Any = None, /) -> ProjectCursor:
        """Run one statement."""
        try:
            self._cur.execute(sql, params)
        except duckdb.IOException as error:
            raise disk_full(error, self._path) or self._damage(error) from None
        except duckdb.Error as error:  # a commit that could not write its WAL, say
            full = disk_full(error, self._path)
            if full is not None:
                raise full from None
            raise
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row."""
        try:
            return self._cur.fetchone()
        except duckdb.IOException as error:
            raise self._damage(error) from None

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        """The next `size` rows."""
        try:
            return self._cur.fetchmany(size)
        except duckdb.IOException as error:
            raise self._damage(error) from None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows."""
        try:
            return self._cur.fetchall()
        except duckdb.IOException as error:
            raise self._damage(error) from None

    def close(self) -> None:
        """Release the cursor."""
        self._cur.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class ProjectConnection:
    """The one DuckDB connection to a project file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._con = con
        self.path = path
        """The project file."""

    def cursor(self) -> ProjectCursor:
        """A new cursor."""
        return ProjectCursor(self._con.cursor(), self.path)

    def close(self) -> None:
        """Close the connection (DuckDB checkpoints the WAL into the file)."""
        self._con.close()


def parse_schema_version(value: object, where: str) -> int:
    """The schema version recorded as `value` in the meta table of the project `where`."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise SchemaError(
            f"{where}: the schema_version in its meta table is {str(value)[:40]!r}, not a "
            f"version any evaltui writes (1 to {SCHEMA_VERSION} here); the file was edited "
            "or is damaged"
        )
    return int(text)


def schema_version(con: Connection, where: str = "the project") -> int | None:
    """The recorded schema version; 0 for an empty file; None for a foreign database."""
    cur = con.cursor()
    tables = {row[0] for row in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" in tables:
        row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return parse_schema_version(row[0], where) if row else None
    return 0 if not tables else None


def migrate(con: Connection, path: Path | str, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the file's version up to `target`; return the version reached."""
    version = schema_version(con, str(path))
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
