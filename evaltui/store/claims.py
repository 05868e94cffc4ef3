"""Claims on judge calls: which run is asking the model for a (judge version, case, order).

The table is append-only. A call's state is its row with the highest
attempt: a live claim by some run, a claim that has expired, or a release.
A run claims calls with one multi-row `INSERT OR IGNORE` at the next attempt
number (the columns go in as lists, unnested in step, as label imports do)
and reads back which rows are its own: when two runs claim the same
call at once, the primary key lets exactly one row in. Times come from the
database's own clock (the server's, for a served project), so the clocks of
raters' machines never need to agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from evaltui.store.db import insert_or_ignore
from evaltui.store.project import Store

Key = tuple[str, bool]
"""A call: case id and whether its outputs are shown swapped."""

_NOW = "make_timestamp(epoch_us(now()))"  # UTC without a zone, as every stored time
_CHUNK = 500


@dataclass(frozen=True)
class Holder:
    """Who made a call's latest claim row."""

    attempt: int
    claimant: str
    host: str
    pid: int
    released: bool
    verdicts: int
    """Verdicts the call had when the claim was made: a later one answered it."""
    expired: bool
    """Whether the claim's time ran out (by the database's clock)."""


@dataclass(frozen=True)
class CallState:
    """A call's latest claim, if any, and how many verdicts it has."""

    holder: Holder | None
    verdicts: int


class Attempt(NamedTuple):
    """A claim to make on a call: its attempt number, and the verdicts the call has now."""

    number: int
    verdicts: int


@dataclass(frozen=True)
class Claimant:
    """A run that claims calls: its id, and the machine and process it runs in."""

    run_id: str
    host: str
    pid: int


def states(store: Store, judge_version: str, keys: Sequence[Key]) -> dict[Key, CallState]:
    """Each call's latest claim row and its verdict count, read in one statement."""
    if not keys:
        return {}
    rows = (
        store.cursor()
        .execute(
            "WITH wanted AS ("
            "SELECT unnest(?::VARCHAR[]) AS case_id, unnest(?::BOOLEAN[]) AS swapped), "
            "latest AS ("
            "SELECT case_id, swapped, attempt, claimant, host, pid, released, verdicts, "
            f"expires_at <= {_NOW} AS expired FROM judge_claims "
            "WHERE judge_version = ? AND case_id IN (SELECT case_id FROM wanted) "
            "QUALIFY row_number() OVER (PARTITION BY case_id, swapped ORDER BY attempt DESC) = 1), "
            "stored AS ("
            "SELECT case_id, swapped, count(*) AS n FROM verdicts "
            "WHERE judge_version = ? AND case_id IN (SELECT case_id FROM wanted) "
            "GROUP BY case_id, swapped) "
            "SELECT w.case_id, w.swapped, l.attempt, l.claimant, l.host, l.pid, l.released, "
            "l.verdicts, l.expired, coalesce(s.n, 0) "
            "FROM wanted w LEFT JOIN latest l USING (case_id, swapped) "
            "LEFT JOIN stored s USING (case_id, swapped)",
            [[k[0] for k in keys], [k[1] for k in keys], judge_version, judge_version],
        )
        .fetchall()
    )
    found: dict[Key, CallState] = {}
    for case_id, swapped, attempt, claimant, host, pid, released, seen, expired, n in rows:
        holder = None
        if attempt is not None:
            holder = Holder(
                int(attempt), claimant, host, int(pid), bool(released), int(seen), bool(expired)
            )
        found[(case_id, bool(swapped))] = CallState(holder, int(n))
    return found


def claim(
    store: Store, judge_version: str, wanted: dict[Key, Attempt], by: Claimant, ttl: float
) -> set[Key]:
    """Claim each call at its attempt for `ttl` seconds; return the calls now `by`'s.

    A call another run claimed at the same attempt first is not returned.
    """
    if not wanted:
        return set()
    _insert(store, judge_version, wanted, by, released=False, ttl=ttl)
    rows = (
        store.cursor()
        .execute(
            "SELECT case_id, swapped, attempt FROM judge_claims "
            "WHERE judge_version = ? AND claimant = ? AND case_id IN (SELECT unnest(?::VARCHAR[]))",
            [judge_version, by.run_id, sorted({k[0] for k in wanted})],
        )
        .fetchall()
    )
    return {
        (case_id, bool(swapped))
        for case_id, swapped, attempt in rows
        if (case_id, bool(swapped)) in wanted and wanted[(case_id, bool(swapped))].number == attempt
    }


def release(store: Store, judge_version: str, held: dict[Key, int], by: Claimant) -> None:
    """Give up `by`'s claims (held at these attempts): a release row at the next attempt.

    A claim some other run has taken over since keeps the other run's row.
    """
    if held:
        rows = {key: Attempt(attempt + 1, 0) for key, attempt in held.items()}
        _insert(store, judge_version, rows, by, released=True, ttl=0.0)


def _insert(
    store: Store,
    judge_version: str,
    rows: dict[Key, Attempt],
    by: Claimant,
    *,
    released: bool,
    ttl: float,
) -> None:
    items = sorted(rows.items())
    cur = store.cursor()
    for at in range(0, len(items), _CHUNK):
        chunk = items[at : at + _CHUNK]
        insert_or_ignore(
            cur,
            "INSERT OR IGNORE INTO judge_claims SELECT ?, unnest(?::VARCHAR[]), "
            "unnest(?::BOOLEAN[]), unnest(?::INTEGER[]), ?, ?, ?, ?, unnest(?::INTEGER[]), "
            f"{_NOW}, {_NOW} + to_seconds(?)",
            [judge_version, [k[0] for k, _ in chunk], [k[1] for k, _ in chunk],
             [a.number for _, a in chunk], by.run_id, by.host, by.pid, released,
             [a.verdicts for _, a in chunk], ttl],
        )  # fmt: skip
