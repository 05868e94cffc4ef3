"""Judges' verdicts, the locked train/dev/test split of a rubric, and looks at its test split.

The verdicts table is the judge cache: a verdict for a judge version, case
and prompt order is stored once, and a run asks only for those not stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from evaltui.errors import InvalidInput, NotFound
from evaltui.models import Judge, Verdict
from evaltui.store.db import Cursor, insert_or_ignore, now
from evaltui.store.project import Store

Split = Literal["train", "dev", "test"]
SPLIT_SHARES = (("train", 0.2), ("dev", 0.4), ("test", 0.4))
"""Share of cases in each split: few-shot examples come from train, iteration uses dev."""

_COLUMNS = (
    "judge_version, case_id, swapped, value, critique, raw, error, "
    "prompt_tokens, completion_tokens, cost_usd, latency_ms, created_at"
)


def _row(verdict: Verdict) -> list[object]:
    return [
        uuid.uuid4().hex,
        verdict.judge_version,
        verdict.case_id,
        verdict.swapped,
        verdict.value,
        verdict.critique,
        verdict.raw,
        verdict.error,
        verdict.prompt_tokens,
        verdict.completion_tokens,
        verdict.cost_usd,
        verdict.latency_ms,
        verdict.created_at or now(),
    ]


_PLACEHOLDERS = "(" + ",".join("?" * 13) + ")"
_CHUNK = 500


def add_verdict(store: Store, verdict: Verdict) -> None:
    """Store one verdict."""
    add_verdicts(store, [verdict])


def add_verdicts(store: Store, verdicts: Sequence[Verdict]) -> int:
    """Store verdicts all together or not at all (one commit); return how many.

    One multi-row INSERT per commit costs a fraction of a commit per row,
    which is what lets a judge run keep pace with its calls. Safe to call from
    a worker thread: it uses a cursor of its own.
    """
    if not verdicts:
        return 0
    with store.transaction() as cur:
        _insert(cur, verdicts)
    return len(verdicts)


def write_verdicts(cur: Cursor, verdicts: Sequence[Verdict]) -> None:
    """`add_verdicts` on a cursor of the caller's: for a writer thread that owns one."""
    cur.execute("BEGIN TRANSACTION")
    try:
        _insert(cur, verdicts)
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def _insert(cur: Cursor, verdicts: Sequence[Verdict]) -> None:
    for at in range(0, len(verdicts), _CHUNK):
        chunk = verdicts[at : at + _CHUNK]
        cur.execute(
            f"INSERT INTO verdicts (id, {_COLUMNS}) VALUES "
            + ",".join([_PLACEHOLDERS] * len(chunk)),
            [value for verdict in chunk for value in _row(verdict)],
        )


_LATEST = "QUALIFY row_number() OVER (PARTITION BY case_id, swapped ORDER BY created_at DESC) = 1 "


def verdicts(store: Store, judge_version: str) -> list[Verdict]:
    """Every stored verdict of a judge version (the latest per case and order)."""
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_COLUMNS} FROM verdicts WHERE judge_version = ? "
            + _LATEST
            + "ORDER BY case_id, swapped",
            [judge_version],
        )
        .fetchall()
    )
    return [_verdict(r) for r in rows]


def latest_verdicts(
    store: Store, judge_version: str, calls: Sequence[tuple[str, bool]]
) -> list[Verdict]:
    """The latest stored verdict of each (case id, swapped) call that has one."""
    if not calls:
        return []
    wanted = set(calls)
    rows = (
        store.cursor()
        .execute(
            f"SELECT {_COLUMNS} FROM verdicts WHERE judge_version = ? "
            "AND case_id IN (SELECT unnest(?::VARCHAR[])) " + _LATEST,
            [judge_version, sorted({c[0] for c in wanted})],
        )
        .fetchall()
    )
    return [_verdict(r) for r in rows if (r[1], bool(r[2])) in wanted]


def _verdict(r: tuple[Any, ...]) -> Verdict:
    return Verdict(
        judge_version=r[0],
        case_id=r[1],
        swapped=r[2],
        value=r[3],
        critique=r[4],
        raw=r[5],
        error=r[6],
        prompt_tokens=r[7],
        completion_tokens=r[8],
        cost_usd=r[9],
        latency_ms=r[10],
        created_at=r[11],
    )


def answered(store: Store, judge_version: str, *, errors: bool = True) -> set[tuple[str, bool]]:
    """The (case id, swapped) calls of a judge version that already have a verdict.

    With `errors=False`, error verdicts do not count as answered (for a re-run
    that retries them on purpose).
    """
    sql = "SELECT case_id, swapped FROM verdicts WHERE judge_version = ?"
    if not errors:
        sql += " GROUP BY case_id, swapped HAVING bool_or(value IS NOT NULL)"
    rows = store.cursor().execute(sql, [judge_version]).fetchall()
    return {(r[0], bool(r[1])) for r in rows}


def tally(store: Store, judge_version: str) -> dict[tuple[str, bool], tuple[int, bool]]:
    """Each answered (case id, swapped) call of a judge version: its verdict count, and
    whether any of its verdicts is not an error."""
    rows = (
        store.cursor()
        .execute(
            "SELECT case_id, swapped, count(*), bool_or(value IS NOT NULL) FROM verdicts "
            "WHERE judge_version = ? GROUP BY case_id, swapped",
            [judge_version],
        )
        .fetchall()
    )
    return {(r[0], bool(r[1])): (int(r[2]), bool(r[3])) for r in rows}


def get_judge(store: Store, rubric: str, name: str | None = None) -> Judge:
    """The latest version of a rubric's judge; `name` may be left out when there is one judge."""
    judges = store.judges(rubric)
    names = sorted({j.name for j in judges})
    if not judges:
        raise NotFound(
            f"rubric {rubric!r} has no judge: add one with `evaltui judge set --rubric {rubric} "
            "--model MODEL` or a [judge] section in its TOML"
        )
    if name is None:
        if len(names) > 1:
            raise InvalidInput(
                f"rubric {rubric!r} has judges {', '.join(names)}: choose one with --judge"
            )
        name = names[0]
    mine = [j for j in judges if j.name == name]
    if not mine:
        raise NotFound(f"rubric {rubric!r} has no judge {name!r} (judges: {', '.join(names)})")
    return mine[-1]


def judge_by_version(store: Store, rubric: str, version: str) -> Judge:
    """A judge version of a rubric, by its hash or a unique prefix of it (`sha256:` optional)."""
    wanted = version if version.startswith("sha256:") else "sha256:" + version
    found = [j for j in store.judges(rubric) if j.version.startswith(wanted)]
    if len(found) != 1:
        state = "no" if not found else "more than one"
        raise NotFound(f"{state} judge version of {rubric!r} starts with {version!r}")
    return found[0]


def split_seed(store: Store, rubric: str, seed: int) -> int:
    """The rubric's split seed, locking `seed` in on first use; later calls return the locked one.

    Of two processes locking a seed at once, the first one in wins for both.
    """
    cur = store.cursor()
    row = cur.execute("SELECT seed FROM judge_splits WHERE rubric = ?", [rubric]).fetchone()
    if row is None:
        insert_or_ignore(
            cur, "INSERT OR IGNORE INTO judge_splits VALUES (?, ?, ?)", [rubric, seed, now()]
        )
        row = cur.execute("SELECT seed FROM judge_splits WHERE rubric = ?", [rubric]).fetchone()
    assert row is not None
    return int(row[0])


def split_of(case_id: str, seed: int) -> Split:
    """Which split a case falls in: a hash of seed and id, so it never changes.

    >>> split_of("case-1", 7), split_of("case-1", 7) == split_of("case-1", 7)
    ('train', True)
    """
    digest = hashlib.sha256(f"{seed}\0{case_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, share in SPLIT_SHARES:
        edge += share
        if point < edge:
            return name  # type: ignore[return-value]
    return "test"


GATE = "gate"
"""The purpose of a gate's read: recorded, but not a look (CI gates on every push)."""


def look_at_split(store: Store, rubric: str, split: str, judge_version: str, purpose: str) -> int:
    """Count a read of the rubric's figures on `split` when it includes test; return the looks so far.

    `all` includes the test split, so it counts too; `dev` and `train` do not.
    A gate's read is recorded but is not a look: nobody sees figures to tune
    the judge on, and counted it would make the counter mean "CI runs".
    """
    if split in ("test", "all"):
        store.cursor().execute(
            "INSERT INTO test_views VALUES (?, ?, ?, ?)", [rubric, judge_version, purpose, now()]
        )
    return count_test_views(store, rubric)


def count_test_views(store: Store, rubric: str) -> int:
    """How many times the rubric's test split has been looked at."""
    row = store.cursor().execute(
        "SELECT count(*) FROM test_views WHERE rubric = ? AND purpose <> ?", [rubric, GATE]
    )
    return int(row.fetchone()[0])  # type: ignore[index]


def approved_judge_version(store: Store, rubric: str) -> str | None:
    """The judge version the rubric was last approved with in this project, if any."""
    row = (
        store.cursor()
        .execute(
            "SELECT judge_version FROM test_views WHERE rubric = ? AND purpose = 'approve' "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [rubric],
        )
        .fetchone()
    )
    return None if row is None else str(row[0])
