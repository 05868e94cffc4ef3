"""`evaltui labels import`: labels made elsewhere, mapped onto a rubric's values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltui.errors import InvalidInput
from evaltui.ingest.formats import check_input_file
from evaltui.ingest.records import Problem, read_records
from evaltui.models import CaseKind, Label, Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.db import now


def parse_values(spec: str) -> dict[str, str]:
    """Parse a value map `RAW=LABEL,...`.

    >>> parse_values("1=A,2=B,0=tie")
    {'1': 'A', '2': 'B', '0': 'tie'}
    """
    mapping: dict[str, str] = {}
    for item in spec.split(","):
        raw, sep, label = item.partition("=")
        if not sep or not raw.strip() or not label.strip():
            raise InvalidInput(f"--values {spec!r}: expected RAW=LABEL pairs, e.g. 1=A,2=B,0=tie")
        mapping[raw.strip()] = label.strip()
    return mapping


@dataclass
class LabelImportReport:
    """What a label import did."""

    path: Path
    read: int
    added: int
    unchanged: int
    values: dict[str, int] = field(default_factory=dict)
    """How many imported labels took each value."""

    def summary(self) -> str:
        """One line for the terminal."""
        counts = ", ".join(f"{v} {n}" for v, n in sorted(self.values.items()))
        text = f"{self.path}: {self.added} new label(s)"
        if self.unchanged:
            text += f", {self.unchanged} unchanged"
        return text + (f" ({counts})" if counts else "")


def _normalise(value: str, rubric: Rubric) -> str | None:
    for allowed in rubric.values:
        if value.lower() == allowed.lower():
            return allowed
    return None


def import_labels(
    store: Store,
    path: Path | str,
    *,
    rater: str,
    rubric: str,
    case_id_column: str | None = None,
    value_column: str | None = None,
    values: dict[str, str] | None = None,
) -> LabelImportReport:
    """Import one rater's labels for a rubric; all or nothing.

    Each record names a case (`--case-id`, default `case_id` or `id`) and a
    raw value (`--value`, default `label` or `value`) which `values` maps to
    the rubric's labels; a `note` column becomes the label's note. A label
    equal to the rater's current one is not written again, so re-importing a
    file adds nothing.
    """
    path = Path(path)
    checked = check_input_file(path)
    target = store.get_rubric(rubric)
    if values:
        for raw, label in values.items():
            if _normalise(label, target) is None:
                raise InvalidInput(
                    f"--values {raw}={label}: {label!r} is not a label of {target.kind.value} rubric "
                    f"{target.name!r} (use {', '.join(target.values)})"
                )
    records = list(read_records(path, checked.format))
    checked.check_unchanged()  # every record was read from the file that was checked
    columns = {key for _, rec in records if isinstance(rec, dict) for key in rec}
    id_col = _pick(path, columns, case_id_column, ("case_id", "id"), "--case-id")
    value_col = _pick(path, columns, value_column, ("label", "value"), "--value")
    parsed: list[tuple[str, str, str, str]] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for location, record in records:
        if isinstance(record, Problem):
            problems.append(record)
            continue
        result = _parse(record, location, id_col, value_col, target, values)
        if isinstance(result, Problem):
            problems.append(result)
            continue
        case_id, value, note = result
        if case_id in seen:
            problems.append(
                Problem(location, id_col, f"case {case_id!r} was labelled at {seen[case_id]}")
            )
            continue
        seen[case_id] = location
        parsed.append((location, case_id, value, note))
    problems += _check_cases(store, parsed, id_col, target)
    if problems:
        more = f" ({len(problems) - 1} more invalid record(s))" if len(problems) > 1 else ""
        raise InvalidInput(f"{problems[0].describe(path)}{more}; nothing was imported")
    if not parsed:
        raise InvalidInput(f"{path}: no labels found; nothing was imported")
    current = {lb.case_id: lb for lb in store.current_labels(target.name, rater)}
    store.ensure_rater(rater)
    source = str(path.resolve())
    new: list[Label] = []
    counts: dict[str, int] = {}
    for _, case_id, value, note in parsed:
        counts[value] = counts.get(value, 0) + 1
        old = current.get(case_id)
        if old is not None and old.value == value and old.note == note:
            continue
        new.append(
            Label(
                id=uuid.uuid4().hex,
                case_id=case_id,
                rubric=target.name,
                rubric_version=target.version,
                rater=rater,
                value=value,
                note=note,
                created_at=now(),
                source=source,
            )
        )
    store.insert_labels(new)
    return LabelImportReport(
        path=path, read=len(parsed), added=len(new), unchanged=len(parsed) - len(new), values=counts
    )


def _pick(
    path: Path, columns: set[str], given: str | None, defaults: tuple[str, ...], flag: str
) -> str:
    if given is not None:
        if given not in columns:
            raise InvalidInput(
                f"{path}: no column {given!r} ({flag}); columns: {', '.join(sorted(columns))}"
            )
        return given
    for name in defaults:
        if name in columns:
            return name
    raise InvalidInput(
        f"{path}: no {' or '.join(repr(d) for d in defaults)} column; name one with {flag} COLUMN "
        f"(columns: {', '.join(sorted(columns)) or 'none'})"
    )


def _parse(
    record: dict[str, Any],
    location: str,
    id_col: str,
    value_col: str,
    rubric: Rubric,
    values: dict[str, str] | None,
) -> tuple[str, str, str] | Problem:
    case_id = record.get(id_col)
    if case_id is None or isinstance(case_id, bool) or not isinstance(case_id, str | int):
        return Problem(location, id_col, "expected a case id (text or a whole number)")
    raw = record.get(value_col)
    if raw is None or isinstance(raw, bool | list | dict):
        return Problem(location, value_col, "expected a label value")
    raw_text = str(raw).strip()
    if values is not None:
        if raw_text not in values:
            return Problem(
                location, value_col, f"{raw_text!r} is not in --values (maps {', '.join(values)})"
            )
        raw_text = values[raw_text]
    value = _normalise(raw_text, rubric)
    if value is None:
        return Problem(
            location,
            value_col,
            f"{raw_text!r} is not a label of {rubric.kind.value} rubric {rubric.name!r} "
            f"(use {', '.join(rubric.values)}, or map values with --values)",
        )
    note = record.get("note")
    return str(case_id), value, note if isinstance(note, str) else ""


def _check_cases(
    store: Store, parsed: list[tuple[str, str, str, str]], id_col: str, rubric: Rubric
) -> list[Problem]:
    """Every labelled case must exist, and be of the kind the rubric judges."""
    if not parsed:
        return []
    rows = (
        store.cursor()
        .execute(
            "SELECT id, kind FROM cases WHERE id IN (SELECT unnest(?::VARCHAR[]))",
            [[case_id for _, case_id, _, _ in parsed]],
        )
        .fetchall()
    )
    kinds = dict(rows)
    wanted = CaseKind.pair if rubric.kind is RubricKind.pairwise else CaseKind.single
    problems = []
    for location, case_id, _, _ in parsed:
        if case_id not in kinds:
            problems.append(
                Problem(location, id_col, f"no case with id {case_id!r} in the project")
            )
        elif kinds[case_id] != wanted.value:
            problems.append(
                Problem(
                    location,
                    id_col,
                    f"case {case_id!r} is {kinds[case_id]}; rubric "
                    f"{rubric.name!r} is {rubric.kind.value}",
                )
            )
    return problems
