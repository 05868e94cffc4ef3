"""Team mode: one process serves a project file over Quack; raters connect with a token each.

Tokens are random, shown once, and kept only as their sha256 in the project,
beside the rater they belong to. The serving process checks each new
connection against them and each statement against the shapes evaltui's
client sends (`evaltui.store.guard`); both checks live in an in-memory catalog
of the serving process, never in the file, so no client can replace them.
Once listening, the serving DuckDB reads no file but the project, loads no
extension, and its settings are locked.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from evaltui.errors import EvaltuiError, InvalidInput
from evaltui.store import Store, guard
from evaltui.store.db import Cursor, now, process_words, short_command
from evaltui.store.literals import literal
from evaltui.store.server import (
    DEFAULT_PORT,
    LOOPBACK_HOSTS,
    Address,
    load_extensions,
    token_sha256,
)

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
TOKEN_PREFIX = "evt_"
"""Every token starts with it: recognisable in a leak, and never read as a command-line flag."""
_RATER_NAME = re.compile(r"^[^\x00-\x1f\x7f\s]{1,64}$")


@dataclass
class Served:
    """A running server: where it listens, and the tokens issued as it started."""

    listen: str
    """The URI Quack bound, e.g. quack:localhost:9494."""
    address: Address
    """What raters pass to `--db`."""
    issued: dict[str, str] = field(default_factory=dict)
    """Rater name to new token; shown once, never stored in this form."""
    holders: list[str] = field(default_factory=list)
    """Every rater who holds a valid token, new or earlier."""

    def command(self, token: str) -> str:
        """The command a rater runs to label on this server.

        The token goes in the environment, not `--token`: other users of the
        machine can read a process's arguments, but not its environment.
        """
        return f"EVALTUI_TOKEN={token} evaltui --db {self.address}"


def issue_tokens(store: Store, raters: Sequence[str]) -> dict[str, str]:
    """A new token for each rater; any earlier token of theirs stops working."""
    tokens: dict[str, str] = {}
    for rater in dict.fromkeys(raters):
        _check_rater_name(rater)
        tokens[rater] = new_token()
    with store.transaction() as cur:
        for rater, token in tokens.items():
            cur.execute("DELETE FROM team_tokens WHERE rater = ?", [rater])
            cur.execute(
                "INSERT INTO team_tokens VALUES (?, ?, ?)", [token_sha256(token), rater, now()]
            )
    for rater in tokens:
        store.ensure_rater(rater)
    return tokens


def new_token() -> str:
    """A new random token (192 bits), prefixed so that it never starts with "-"."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def _check_rater_name(rater: str) -> None:
    if not _RATER_NAME.match(rater):
        raise InvalidInput(
            f"{rater!r} is not a rater name (1-64 characters, no spaces or control characters)"
        )


def token_holders(store: Store) -> list[str]:
    """The raters who hold a valid token."""
    rows = store.cursor().execute("SELECT DISTINCT rater FROM team_tokens ORDER BY rater")
    return [r[0] for r in rows.fetchall()]


def start(
    store: Store,
    *,
    host: str | None = None,
    port: int = DEFAULT_PORT,
    raters: Sequence[str] = (),
) -> Served:
    """Serve an open project file over Quack until `stop`; localhost only unless `host` is given."""
    if store.server is not None:
        raise InvalidInput(f"{store.path} is already served; serve the project file itself")
    if not 0 < port < 65536:
        raise InvalidInput(f"--port {port} is not a port (1-65535)")
    for rater in raters:
        _check_rater_name(rater)
    if not raters and not token_holders(store):
        raise InvalidInput(
            "no rater could connect: give each one with --rater NAME to print their token"
        )
    bind = (host or "localhost").strip().strip("[]")
    listen = f"quack:[{bind}]:{port}" if ":" in bind else f"quack:{bind}:{port}"
    _check_port_free(bind, port)
    cur = store.cursor()
    load_extensions(cur)
    _guard(cur)
    others = "true" if bind not in LOOPBACK_HOSTS else "false"
    try:
        cur.execute(f"CALL quack_serve({literal(listen)}, allow_other_hostname := {others})")
    except duckdb.Error as error:
        raise EvaltuiError(f"cannot serve on {listen}: {str(error).splitlines()[0]}") from None
    # Tokens are issued once the port is ours: a server that failed to start
    # must not have retired anyone's token.
    served = Served(listen=listen, address=Address(_reachable(bind), port))
    try:
        served.issued = issue_tokens(store, raters)
        served.holders = token_holders(store)
    except BaseException:
        stop(store, served)
        raise
    return served


def _guard(cur: Cursor) -> None:
    """Make the serving DuckDB admit only what evaltui's client sends, and lock it that way."""
    catalog = cur.execute("SELECT current_database()").fetchone()
    assert catalog is not None
    cur.execute(f"ATTACH ':memory:' AS {guard.CATALOG}")
    functions = cur.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('table', 'table_macro', 'pragma')"
    ).fetchall()
    for statement in guard.macros(str(catalog[0]), [row[0] for row in functions]):
        cur.execute(statement)
    cur.execute(f"SET GLOBAL quack_authentication_function = {literal(guard.AUTHENTICATE)}")
    cur.execute(f"SET GLOBAL quack_authorization_function = {literal(guard.AUTHORIZE)}")
    for setting in ("autoinstall_known_extensions", "autoload_known_extensions"):
        cur.execute(f"SET GLOBAL {setting} = false")  # for every connection, callbacks' too
    cur.execute("SET GLOBAL python_enable_replacements = false")
    cur.execute("SET GLOBAL enable_external_access = false")  # no file but the open project
    cur.execute("SET GLOBAL lock_configuration = true")  # and no statement can change that


def _check_port_free(bind: str, port: int) -> None:
    """Refuse a port another process listens on (Quack would share it and split the team)."""
    try:
        addresses = {
            str(info[4][0]) for info in socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)
        }
    except OSError:
        return  # an unknown host: quack_serve says so
    for address in sorted(addresses):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    continue
                holder = port_holder(port)
                raise EvaltuiError(
                    f"port {port} is already in use{f' by {holder}' if holder else ''}; "
                    "stop it, or serve on another port with --port"
                ) from None


def port_holder(port: int) -> str | None:
    """The process listening on a TCP port of this machine, as 'PID N (command)'; None if unknown."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc") if inodes else []):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                continue
        except OSError:
            continue
        command = short_command(process_words(int(pid)))
        return f"PID {pid} ({command})"
    return None


def stop(store: Store, served: Served) -> None:
    """Stop listening; connected raters see the server as gone."""
    store.cursor().execute(f"CALL quack_stop({literal(served.listen)})")


def _reachable(bind: str) -> str:
    """The host raters connect to: the bound one, or for a wildcard this machine's address."""
    return _reachable_host() if bind in _WILDCARD_HOSTS else bind


def _reachable_host() -> str:
    """This machine's address on its default route (no packet is sent), else its name."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostname()
    finally:
        probe.close()
