"""Team mode: one process serves a project file over Quack; raters connect with a token each.

Tokens are random, shown once, and kept only as their sha256 in the project,
beside the rater they belong to. The Quack server checks each new connection
with the `evaltui_token_ok` macro (schema 7), so the server's own default
token is never accepted. A token lets its holder read and write the whole
project: hand them only to the team.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from evaltui.errors import EvaltuiError, InvalidInput
from evaltui.store import Store
from evaltui.store.db import now
from evaltui.store.literals import literal
from evaltui.store.server import (
    DEFAULT_PORT,
    LOOPBACK_HOSTS,
    Address,
    load_extensions,
    token_sha256,
)

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
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
        tokens[rater] = secrets.token_urlsafe(24)
    with store.transaction() as cur:
        for rater, token in tokens.items():
            cur.execute("DELETE FROM team_tokens WHERE rater = ?", [rater])
            cur.execute(
                "INSERT INTO team_tokens VALUES (?, ?, ?)", [token_sha256(token), rater, now()]
            )
    for rater in tokens:
        store.ensure_rater(rater)
    return tokens


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
    cur = store.cursor()
    load_extensions(cur)
    cur.execute("SET GLOBAL quack_authentication_function = 'evaltui_token_ok'")
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
