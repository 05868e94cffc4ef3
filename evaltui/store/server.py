"""The server backing of the store: a project served by `evaltui serve`, reached over Quack.

The client attaches the server's database through DuckDB's Quack extension
and runs every statement whole on the server with the attached catalog's
`query()`, so server and file give the same SQL the same meaning. One attach
is one server session, shared by every cursor: a lock keeps one statement,
or one transaction, on the wire at a time.

A dropped connection is mended here. A statement the server never received
(nothing listening, or a session the server no longer knows after a restart)
is sent again on a fresh attach. One whose reply was lost is sent again only
when running it twice does what running it once does: reads, and
`INSERT OR IGNORE` of rows whose ids the writer chose (labels are). Anything
else, and anything inside a transaction, raises `ConnectionLost`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from evaltui.errors import DiskFull, EvaltuiError, InvalidInput, SchemaError
from evaltui.store.db import no_space, open_duckdb, parse_schema_version
from evaltui.store.literals import inline, literal
from evaltui.store.schema import SCHEMA_VERSION

DEFAULT_PORT = 9494
"""Quack's own default port."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

RETRY_FOR = 15.0
"""Seconds a statement keeps trying to reach a dropped server before giving up."""

_ALIAS = "evaltui_server"
_ADDRESS = re.compile(
    r"(?i)^quack:(?://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+)(?::(?P<port>\d+))?$"
)
_BEGIN = re.compile(r"^\s*BEGIN(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*(COMMIT|ROLLBACK|ABORT|END)(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_ROLLBACK = re.compile(r"^\s*(ROLLBACK|ABORT)\b", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b", re.IGNORECASE)
_IDEMPOTENT = re.compile(r"^\s*(SELECT|FROM|WITH|INSERT\s+OR\s+IGNORE)\b", re.IGNORECASE)


class ServerUnreachable(EvaltuiError):
    """Nothing answers at the address, or it stopped answering."""


class AccessDenied(EvaltuiError):
    """The server refused the token."""


class WriteConflict(EvaltuiError):
    """Another rater's transaction kept writing the same rows."""


class ConnectionLost(ServerUnreachable):
    """The connection dropped while a write was in flight; it may or may not have been stored."""


@dataclass(frozen=True)
class Address:
    """Where `evaltui serve` listens: `quack:HOST:PORT`."""

    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> Address:
        """Read `quack:HOST[:PORT]`.

        >>> Address.parse("quack:127.0.0.1:9500")
        Address(host='127.0.0.1', port=9500)
        """
        match = _ADDRESS.match(text.strip())
        port = int(match["port"]) if match and match["port"] else DEFAULT_PORT
        if match is None or not 0 < port < 65536:
            raise EvaltuiError(
                f"{text!r} is not a server address; write it as quack:HOST:PORT "
                "(for example quack:localhost:9494)"
            )
        return cls(match["host"].strip("[]"), port)

    @property
    def loopback(self) -> bool:
        """Whether the address is this machine only."""
        return self.host in LOOPBACK_HOSTS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"quack:{host}:{self.port}"


def is_address(target: object) -> bool:
    """Whether a `--db` value names a server rather than a file."""
    return isinstance(target, str) and target.strip().lower().startswith("quack:")


def token_sha256(token: str) -> str:
    """The form a token is kept in (DuckDB's `sha256()` of the same text gives the same hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_extensions(cur: Any) -> None:
    """Load Quack and httpfs from their installed Python packages; never download them."""
    cur.execute("SET autoinstall_known_extensions = false")
    cur.execute("SET autoload_known_extensions = false")
    for name in ("httpfs", "quack"):
        path = _extension_file(name)
        cur.execute(f"LOAD {literal(str(path))}")


def _extension_file(name: str) -> Path:
    package = f"duckdb_extension_{name}"
    hint = f"team mode needs the Python package duckdb-extension-{name}=={duckdb.__version__}"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise EvaltuiError(f"{hint}; install it into evaltui's environment") from None
    path = (
        Path(next(iter(module.__path__)))
        / "extensions"
        / f"v{duckdb.__version__}"
        / f"{name}.duckdb_extension"
    )
    if not path.exists():
        raise EvaltuiError(f"{hint} (found a build for another DuckDB version)")
    return path


def _trouble(error: duckdb.Error) -> str | None:
    """How a failed statement relates to the connection.

    'unsent': the server never ran it (nothing listening, a session it forgot);
    'conflict': another rater's transaction wrote the same row first and the
    server rolled this statement back; 'unknown': the reply was lost; None:
    the statement itself failed.
    """
    text = str(error)
    if "Invalid connection id" in text or "Could not connect" in text:
        return "unsent"
    if "Conflict on" in text or (
        isinstance(error, duckdb.TransactionException) and "onflict" in text
    ):
        return "conflict"
    if isinstance(error, duckdb.IOException) and (
        "Failed to send message" in text or "HTTP" in text
    ):
        return "unknown"
    return None


class ServerConnection:
    """One client's connection to a served project, shaped like a DuckDB connection."""

    def __init__(self, address: Address, token: str, *, retry_for: float = RETRY_FOR) -> None:
        self.address = address
        self.retry_for = retry_for
        self.state = "connecting"
        """'connected', 'reconnecting' (a drop is being mended) or 'lost' (gave up)."""
        self.on_state: Callable[[str], None] | None = None
        self._token = token
        self._lock = threading.RLock()
        self._transaction_depth = 0
        self._transaction_lost = False
        self._attached = False
        self._local = open_duckdb()
        try:
            load_extensions(self._local)
            self._attach()
        except BaseException:
            self._local.close()
            raise
        self._set_state("connected")

    @classmethod
    def open(cls, address: Address, token: str | None) -> tuple[ServerConnection, str]:
        """Connect to a project served at `address`; return the connection and the token's rater."""
        if not token:
            raise InvalidInput(
                f"connecting to {address} needs the token 'evaltui serve' printed for you "
                "(--token TOKEN or EVALTUI_TOKEN)"
            )
        con = cls(address, token)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = parse_schema_version(row[0], str(address)) if row else 0
            if version != SCHEMA_VERSION:
                newer = "the server's" if version > SCHEMA_VERSION else "this"
                raise SchemaError(
                    f"the project at {address} has schema {version} and this evaltui reads "
                    f"{SCHEMA_VERSION}; upgrade {newer} evaltui so both match"
                )
            found = con.execute(
                "SELECT rater FROM team_tokens WHERE token_sha256 = ?", [token_sha256(token)]
            ).fetchone()
            if found is None:
                raise AccessDenied(f"the token is no longer valid at {address}; ask for a new one")
        except BaseException:
            con.close()
            raise
        return con, str(found[0])

    @property
    def token(self) -> str:
        """The token this connection presented (a served project checks writes against it)."""
        return self._token

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    def _attach(self) -> None:
        try:
            self._local.execute(
                f"ATTACH {literal(str(self.address))} AS {_ALIAS} "
                f"(TOKEN {literal(self._token)}, DISABLE_SSL true)"
            )
        except duckdb.Error as error:
            raise self._refusal(error) from None
        self._attached = True

    def _refusal(self, error: duckdb.Error) -> EvaltuiError:
        text = str(error)
        if "Authentication failed" in text:
            return AccessDenied(
                f"the server at {self.address} refused the token; use the one 'evaltui serve' "
                "printed for you (--token or EVALTUI_TOKEN), or ask for a new one"
            )
        if "Could not connect" in text or isinstance(error, duckdb.IOException):
            return ServerUnreachable(
                f"nothing answers at {self.address}; is 'evaltui serve' running there "
                f"(with --port {self.address.port})?"
            )
        return EvaltuiError(f"cannot connect to {self.address}: {text.splitlines()[0]}")

    def _reattach(self) -> None:
        if self._attached:
            self._attached = False
            with contextlib.suppress(duckdb.Error):  # already gone
                self._local.execute(f"DETACH {_ALIAS}")
        self._attach()

    def cursor(self) -> ServerCursor:
        """A cursor; its results are read whole while the connection is held."""
        return ServerCursor(self)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> ServerCursor:
        """Run one statement (a shortcut for `cursor().execute`)."""
        return self.cursor().execute(sql, params)

    def close(self) -> None:
        """Leave the server (an open transaction there is rolled back by it)."""
        with self._lock:
            self._local.close()

    def ping(self) -> bool:
        """Check the server answers, reconnecting if it had dropped; never raises."""
        if not self._lock.acquire(timeout=0.1):
            return self.state == "connected"  # busy with a statement: it reports for itself
        try:
            if self._transaction_depth:
                return self.state == "connected"
            try:
                if not self._attached:
                    self._attach()
                self._local.execute(f"SELECT * FROM {_ALIAS}.query('SELECT 1')").fetchall()
            except (duckdb.Error, EvaltuiError):
                try:
                    self._reattach()
                except EvaltuiError:
                    if self.state != "lost":
                        self._set_state("reconnecting")
                    return False
            self._set_state("connected")
            return True
        finally:
            self._lock.release()

    # The wire ----------------------------------------------------------------

    def run(self, sql: str, params: Sequence[Any] | None) -> tuple[list[tuple[Any, ...]], Any]:
        """Rows and description of one statement run on the server."""
        text = inline(sql, params)
        if _BEGIN.match(sql):
            self._lock.acquire()  # held until COMMIT or ROLLBACK: one transaction on the wire
            try:
                result = self._send(sql, text)
            except BaseException:
                self._lock.release()
                raise
            self._transaction_depth += 1
            return result
        if _END.match(sql):
            if not self._transaction_depth:
                if _ROLLBACK.match(sql):
                    return [], None  # the transaction already ended with its connection
                raise ConnectionLost(self._lost_message())
            try:
                if self._transaction_lost:
                    if _ROLLBACK.match(sql):
                        return [], None  # the server dropped it with the session
                    raise ConnectionLost(self._lost_message())
                return self._send(sql, text)
            finally:
                self._transaction_lost = False
                self._transaction_depth -= 1
                self._lock.release()
        with self._lock:
            if self._transaction_lost:  # never run the rest of a lost transaction on its own
                raise ConnectionLost(self._lost_message())
            return self._send(sql, text)

    def _lost_message(self) -> str:
        return (
            f"the connection to {self.address} dropped during a write; "
            "it may not have been stored, try again"
        )

    def copy_to(self, sql: str, params: Sequence[Any] | None, target: str, options: str) -> int:
        """Run a query on the server and write its rows to a file here with DuckDB's COPY."""
        local = f"COPY (SELECT * FROM {_ALIAS}.query(?)) TO {target} ({options})"
        with self._lock:
            rows, _ = self._send(sql, inline(sql, params), local=local)
        return int(rows[0][0]) if rows else 0

    def _send(
        self, sql: str, text: str, *, local: str = f"SELECT * FROM {_ALIAS}.query(?)"
    ) -> tuple[list[tuple[Any, ...]], Any]:
        # A server already given up on gets one attempt: the heartbeat does the waiting,
        # so a screen is not held up for the whole retry time at every step.
        deadline = time.monotonic() + (0.0 if self.state == "lost" else self.retry_for)
        pause = 0.05
        maybe_stored = False  # an attempt whose reply was lost may have landed
        while True:
            try:
                if not self._attached:
                    self._attach()
                cur = self._local.cursor()
                cur.execute(local, [text])
                rows = cur.fetchall()
                self._set_state("connected")
                return rows, cur.description
            except ServerUnreachable:
                pass  # the attach itself failed: nothing was sent
            except duckdb.Error as error:
                trouble = _trouble(error)
                in_transaction = self._transaction_depth > 0
                if trouble is None and no_space(error):
                    raise DiskFull(
                        f"the disk holding the project served at {self.address} is full: "
                        "whoever runs 'evaltui serve' must free some space, then try again "
                        "(the write that failed stored nothing)"
                    ) from None
                if trouble is None or (trouble == "conflict" and in_transaction):
                    raise  # the caller's transaction rolls back
                if trouble == "conflict":
                    if time.monotonic() >= deadline:
                        raise WriteConflict(
                            f"another rater kept changing the same rows at {self.address} "
                            f"for {self.retry_for:g} s; nothing was stored, try again"
                        ) from None
                    time.sleep(pause)  # the other writer commits; then this one goes in
                    pause = min(pause * 2, 1.0)
                    continue
                if in_transaction or (trouble == "unknown" and not _IDEMPOTENT.match(sql)):
                    self._transaction_lost = in_transaction
                    self._mend_quietly()
                    raise ConnectionLost(self._lost_message()) from None
                # A read whose reply was lost changed nothing; a write may have landed.
                maybe_stored = maybe_stored or (
                    trouble == "unknown" and _WRITE.match(sql) is not None
                )
            if time.monotonic() >= deadline:
                self._set_state("lost")
                if maybe_stored:
                    raise ConnectionLost(self._lost_message())
                raise ServerUnreachable(
                    f"lost the server at {self.address} for {self.retry_for:g} s; "
                    "nothing was stored by the last step, try again when it is back"
                )
            self._set_state("reconnecting")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            with contextlib.suppress(ServerUnreachable):
                self._reattach()

    def _mend_quietly(self) -> None:
        try:
            self._reattach()
            self._set_state("connected")
        except EvaltuiError:
            self._set_state("reconnecting")


class ServerCursor:
    """The part of DuckDB's cursor the store uses, over a `ServerConnection`."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._rows: list[tuple[Any, ...]] = []
        self._at = 0
        self.description: Any = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> ServerCursor:
        """Run a statement on the server; its rows are then read with the fetch methods."""
        self._rows, self.description = self._connection.run(sql, params)
        self._at = 0
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row not yet read."""
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    def close(self) -> None:
        """Forget the rows."""
        self._rows = []
