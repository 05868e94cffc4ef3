"""How a file's columns become case fields (`--map FIELD=COLUMN`, `--id`, `--kind`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaltui.errors import InvalidInput
from evaltui.models import CaseKind

CASE_FIELDS = (
    "id",
    "input",
    "messages",
    "output",
    "output_a",
    "output_b",
    "metadata",
    "split",
    "tags",
    "reason",
)
"""Case fields a column can be mapped to."""

TEXT_JOIN = "\n\n"
"""Separator used when one text field is mapped to several columns (`input=a+b`)."""


def parse_map(items: list[str]) -> dict[str, list[str]]:
    """Parse `FIELD=COLUMN` items; `FIELD=A+B` joins the text of several columns.

    >>> parse_map(["input=instruction+input", "id=idx"])
    {'input': ['instruction', 'input'], 'id': ['idx']}
    """
    mapping: dict[str, list[str]] = {}
    for item in items:
        target, sep, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise InvalidInput(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map input=prompt")
        if target not in CASE_FIELDS:
            raise InvalidInput(
                f"--map {item!r}: unknown field {target!r}; fields: {', '.join(CASE_FIELDS)}"
            )
        columns = [c.strip() for c in source.split("+")]
        if any(not c for c in columns):
            raise InvalidInput(f"--map {item!r}: empty column name")
        if len(columns) > 1 and target not in ("input", "output", "output_a", "output_b", "reason"):
            raise InvalidInput(f"--map {item!r}: only text fields can join several columns")
        mapping[target] = columns
    return mapping


@dataclass(frozen=True)
class Resolved:
    """The mapping for one file: which columns feed each field, and what goes to metadata."""

    kind: CaseKind
    fields: dict[str, list[str]]
    """Case field -> the file's columns (several are joined with a blank line)."""
    extra: list[str] = field(default_factory=list)
    """Columns mapped to no field: kept in the case's metadata under their own names."""


def resolve(
    path: Path,
    columns: list[str],
    explicit: dict[str, list[str]],
    *,
    kind: CaseKind | None,
) -> Resolved:
    """Match the file's columns to case fields: explicit mappings first, then same-named columns."""
    available = set(columns)
    fields: dict[str, list[str]] = {}
    for target, sources in explicit.items():
        missing = [c for c in sources if c not in available]
        if missing:
            raise InvalidInput(
                f"{path}: no column {missing[0]!r} (for field {target!r}); "
                f"columns: {', '.join(columns)}"
            )
        fields[target] = sources
    used = {c for sources in fields.values() for c in sources}
    for name in CASE_FIELDS:
        if name not in fields and name in available and name not in used:
            fields[name] = [name]
    if kind is None:
        kind = CaseKind.pair if "output_a" in fields or "output_b" in fields else CaseKind.single
    if "input" not in fields and "messages" not in fields:
        raise _missing(path, "input", columns, also="or 'messages' for a chat transcript")
    needed = ("output_a", "output_b") if kind is CaseKind.pair else ("output",)
    for name in needed:
        if name not in fields and not (name == "output" and "messages" in fields):
            raise _missing(path, name, columns)
    if kind is CaseKind.single:
        for name in ("output_a", "output_b"):
            fields.pop(name, None)
    else:
        fields.pop("output", None)
    used = {c for sources in fields.values() for c in sources}
    extra = [c for c in columns if c not in used]
    return Resolved(kind=kind, fields=fields, extra=extra)


def _missing(path: Path, name: str, columns: list[str], also: str = "") -> InvalidInput:
    hint = f" ({also})" if also else ""
    return InvalidInput(
        f"{path}: no column for field {name!r}{hint}; map one with --map {name}=COLUMN "
        f"(columns: {', '.join(columns)})"
    )
