"""`evaltui export labels`: current labels with full provenance, through DuckDB's COPY."""

from __future__ import annotations

from pathlib import Path

import duckdb

from evaltui import files
from evaltui.errors import InvalidInput
from evaltui.ingest.formats import Format, output_format
from evaltui.store import Store

_KINDS = {Format.jsonl: files.JSON_LINES, Format.csv: files.CSV, Format.parquet: files.PARQUET}

_COPY_OPTIONS = {
    Format.jsonl: "FORMAT json",
    Format.csv: "FORMAT csv, HEADER true",
    Format.parquet: "FORMAT parquet",
}

_EXPORT_SQL = """
SELECT
    l.case_id, l.rubric, l.rubric_version, l.rater, r.kind AS rater_kind, l.value,
    l.note, l.tags, l.shown_swapped, l.seconds, l.created_at AS labelled_at,
    l.id AS label_id, l.source,
    a.value AS gold_value, a.cause AS adjudication_cause,
    a.rationale AS adjudication_rationale, a.adjudicator
FROM current_labels l
LEFT JOIN raters r ON r.name = l.rater
LEFT JOIN (
    SELECT * FROM adjudications
    QUALIFY row_number() OVER (PARTITION BY case_id, rubric ORDER BY seq DESC) = 1
) a ON a.case_id = l.case_id AND a.rubric = l.rubric
WHERE ?::VARCHAR IS NULL OR l.rubric = ?::VARCHAR
ORDER BY l.rubric, l.case_id, l.rater
"""


def export_labels(
    store: Store, out: Path | str, *, rubric: str | None = None, force: bool = False
) -> int:
    """Write every current label (optionally of one rubric) to `out`; return how many.

    The format follows the suffix: `.jsonl`/`.json` (JSON lines), `.csv`, `.parquet`.
    An existing file is replaced only when it is of that format and `force` is given.
    """
    out = Path(out)
    files.refuse_folder(out)
    fmt = output_format(out)
    if rubric is not None:
        store.get_rubric(rubric)  # a clear error for an unknown rubric
    with files.replacing(out, _KINDS[fmt], force=force) as temporary:
        try:
            return store.copy_to(_EXPORT_SQL, [rubric, rubric], temporary, _COPY_OPTIONS[fmt])
        except duckdb.IOException as error:
            raise InvalidInput(f"cannot write {out}: {str(error).splitlines()[0]}") from None
