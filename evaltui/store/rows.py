"""Rows of the project file as domain models, and the column lists the queries select."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from evaltui.models import Case, Label, Rubric

CASE_COLUMNS = (
    "id, kind, input, messages, output, output_a, output_b, metadata, split, tags, "
    "source, imported_at, reason"
)
LABEL_COLUMNS = (
    "id, case_id, rubric, rubric_version, rater, value, note, tags, shown_swapped, seconds, "
    "created_at, source"
)
RUBRIC_COLUMNS = (
    "name, version, kind, status, question, pass_definition, fail_definition, checklist, "
    "examples_pass, examples_fail, created_at"
)


def rubric_from_row(row: Sequence[Any]) -> Rubric:
    return Rubric(
        name=row[0],
        version=row[1],
        kind=row[2],
        status=row[3],
        question=row[4],
        pass_=row[5],
        fail=row[6],
        checklist=tuple(row[7]),
        examples_pass=tuple(row[8]),
        examples_fail=tuple(row[9]),
        created_at=row[10],
    )


def case_from_row(row: Sequence[Any]) -> Case:
    return Case(
        id=row[0],
        kind=row[1],
        input=row[2],
        messages=json.loads(row[3]) if row[3] is not None else None,
        output=row[4],
        output_a=row[5],
        output_b=row[6],
        metadata=json.loads(row[7]) if row[7] is not None else {},
        split=row[8],
        tags=tuple(row[9] or ()),
        source=row[10],
        imported_at=row[11],
        reason=row[12],
    )


def label_from_row(row: Sequence[Any]) -> Label:
    return Label(
        id=row[0],
        case_id=row[1],
        rubric=row[2],
        rubric_version=row[3],
        rater=row[4],
        value=row[5],
        note=row[6],
        tags=tuple(row[7] or ()),
        shown_swapped=row[8],
        seconds=row[9],
        created_at=row[10],
        source=row[11],
    )
