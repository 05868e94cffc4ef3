"""Adjudications and failure modes (axial coding): what humans decide after labelling."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from evaltui.errors import InvalidInput, NotFound
from evaltui.models import Adjudication, AdjudicationCause, FailureMode, Label
from evaltui.store import guard
from evaltui.store.db import now
from evaltui.store.project import Store


def adjudicate(
    store: Store,
    case_id: str,
    rubric: str,
    value: str,
    cause: AdjudicationCause,
    rationale: str,
    adjudicator: str,
) -> Adjudication:
    """Record the gold label of a case (append-only: a later adjudication supersedes)."""
    allowed = store.get_rubric(rubric).values
    if value not in allowed:
        raise InvalidInput(
            f"{value!r} is not a label of rubric {rubric!r} (use {', '.join(allowed)})"
        )
    adjudication = Adjudication(
        case_id=case_id,
        rubric=rubric,
        value=value,
        cause=cause,
        rationale=rationale,
        adjudicator=adjudicator,
        created_at=now(),
    )
    store.check_own(adjudicator)
    params = [
        uuid.uuid4().hex,
        case_id,
        rubric,
        value,
        cause.value,
        rationale,
        adjudicator,
        adjudication.created_at,
    ]
    store.cursor().execute(*store.own_statement(guard.ADJUDICATION_INSERT, params, "adjudicator"))
    return adjudication


def adjudications(store: Store, rubric: str) -> dict[str, Adjudication]:
    """The current gold label of every adjudicated case of a rubric."""
    rows = (
        store.cursor()
        .execute(
            "SELECT case_id, value, cause, rationale, adjudicator, created_at FROM adjudications "
            "WHERE rubric = ? QUALIFY row_number() OVER (PARTITION BY case_id ORDER BY seq DESC) = 1",
            [rubric],
        )
        .fetchall()
    )
    return {
        r[0]: Adjudication(
            case_id=r[0],
            rubric=rubric,
            value=r[1],
            cause=AdjudicationCause(r[2]),
            rationale=r[3],
            adjudicator=r[4],
            created_at=r[5],
        )
        for r in rows
    }


def create_mode(store: Store, rubric: str, name: str, description: str = "") -> FailureMode:
    """A new failure mode of a rubric; names are unique among the rubric's live modes."""
    name = name.strip()
    if not name:
        raise InvalidInput("a failure mode needs a name")
    if any(m.name == name for m in modes(store, rubric)):
        raise InvalidInput(f"failure mode {name!r} already exists")
    row = (
        store.cursor()
        .execute(
            "INSERT INTO failure_modes (id, rubric, name, description, created_at) "
            "VALUES (nextval('failure_mode_seq'), ?, ?, ?, ?) RETURNING id",
            [rubric, name, description, now()],
        )
        .fetchone()
    )
    assert row is not None
    return FailureMode(id=int(row[0]), rubric=rubric, name=name, description=description)


def modes(store: Store, rubric: str) -> list[FailureMode]:
    """The rubric's failure modes that were not merged into another, oldest first."""
    rows = (
        store.cursor()
        .execute(
            "SELECT id, name, description FROM failure_modes WHERE rubric = ? AND merged_into IS NULL "
            "ORDER BY id",
            [rubric],
        )
        .fetchall()
    )
    return [FailureMode(id=r[0], rubric=rubric, name=r[1], description=r[2]) for r in rows]


def rename_mode(store: Store, mode_id: int, name: str) -> None:
    """Give a failure mode a new name; its links are untouched."""
    mode = _mode(store, mode_id)
    if any(m.name == name.strip() and m.id != mode_id for m in modes(store, mode.rubric)):
        raise InvalidInput(f"failure mode {name.strip()!r} already exists")
    store.cursor().execute(
        "UPDATE failure_modes SET name = ? WHERE id = ?", [name.strip(), mode_id]
    )


def merge_modes(store: Store, source_id: int, target_id: int) -> None:
    """Fold one failure mode into another: its labels count for the target from now on."""
    source, target = _mode(store, source_id), _mode(store, target_id)
    if source.id == target.id or source.rubric != target.rubric:
        raise InvalidInput("merge two different failure modes of the same rubric")
    store.cursor().execute(
        "UPDATE failure_modes SET merged_into = ? WHERE id = ?", [target_id, source_id]
    )


def _mode(store: Store, mode_id: int) -> FailureMode:
    row = (
        store.cursor()
        .execute("SELECT id, rubric, name, description FROM failure_modes WHERE id = ?", [mode_id])
        .fetchone()
    )
    if row is None:
        raise NotFound(f"no failure mode {mode_id}")
    return FailureMode(id=row[0], rubric=row[1], name=row[2], description=row[3])


def assign(store: Store, label: Label, mode_id: int) -> None:
    """Link a label (its note) to a failure mode."""
    store.cursor().execute(
        "INSERT INTO failure_mode_links VALUES (?, ?, ?)", [label.id, mode_id, now()]
    )


_RESOLVED = """
WITH RECURSIVE chain(id, root) AS (
    SELECT id, id FROM failure_modes WHERE merged_into IS NULL
    UNION ALL
    SELECT f.id, chain.root FROM failure_modes f JOIN chain ON f.merged_into = chain.id
)
"""


@dataclass(frozen=True)
class ModeCount:
    """A failure mode with how many current labels it covers and some of their cases."""

    mode: FailureMode
    count: int
    examples: tuple[str, ...]


def ranking(store: Store, rubric: str, *, examples: int = 3) -> list[ModeCount]:
    """Live failure modes by how many current labels are linked to them (merges followed)."""
    rows = (
        store.cursor()
        .execute(
            _RESOLVED
            + """
        SELECT chain.root, count(DISTINCT l.case_id || '/' || l.rater), list(DISTINCT l.case_id ORDER BY l.case_id)
        FROM failure_mode_links k
        JOIN chain ON chain.id = k.mode_id
        JOIN current_labels l ON l.id = k.label_id
        WHERE l.rubric = ?
        GROUP BY chain.root
        """,
            [rubric],
        )
        .fetchall()
    )
    counted = {r[0]: (int(r[1]), tuple(r[2][:examples])) for r in rows}
    result = [ModeCount(m, *counted.get(m.id, (0, ()))) for m in modes(store, rubric)]
    return sorted(result, key=lambda m: (-m.count, m.mode.name))


def label_modes(store: Store, rubric: str) -> dict[str, list[str]]:
    """Current label id -> names of the live failure modes it is linked to."""
    rows = (
        store.cursor()
        .execute(
            _RESOLVED
            + """
        SELECT k.label_id, list(DISTINCT f.name ORDER BY f.name)
        FROM failure_mode_links k JOIN chain ON chain.id = k.mode_id
        JOIN failure_modes f ON f.id = chain.root
        WHERE f.rubric = ? GROUP BY k.label_id
        """,
            [rubric],
        )
        .fetchall()
    )
    return {r[0]: list(r[1]) for r in rows}
