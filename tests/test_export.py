"""`evaltui export labels`: every current label with its provenance, in three formats."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from evaltui.models import AdjudicationCause, Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.coding import adjudicate
from tests.conftest import write_jsonl, write_rubric


@pytest.fixture
def labelled(cli, tmp_path: Path, db: Path) -> Path:  # type: ignore[no-untyped-def]
    cases = write_jsonl(
        tmp_path / "cases.jsonl",
        [{"id": f"c{i}", "input": f"question {i}", "output": f"answer {i}"} for i in range(3)],
    )
    assert cli("import", cases, "--db", db).code == 0
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0
    rubric = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
    with Store.open(db) as store:
        store.add_label("c0", rubric, "alice", "pass", note="good", tags=["tone"], seconds=4.5)
        store.add_label("c1", rubric, "alice", "pass")
        store.add_label("c1", rubric, "alice", "fail", note="changed my mind")
        store.add_label("c2", rubric, "bob", "fail")
        store.add_label("c2", rubric, "bob", None)  # undone: not a current label
        adjudicate(
            store, "c1", "ok", "fail", AdjudicationCause.rater_error, "missed step 2", "carol"
        )
    return db


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_export_writes_current_labels_with_provenance(
    cli, labelled: Path, tmp_path: Path, suffix: str
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / f"labels{suffix}"
    result = cli("export", "labels", out, "--db", labelled, "--rubric", "ok")
    assert result.code == 0, result.err
    assert "2 label(s)" in result.out
    rows = duckdb.sql(f"SELECT * FROM '{out}' ORDER BY case_id").fetchall()
    columns = duckdb.sql(f"SELECT * FROM '{out}'").columns
    by_case = {row[columns.index("case_id")]: dict(zip(columns, row, strict=True)) for row in rows}
    assert set(by_case) == {"c0", "c1"}
    c0, c1 = by_case["c0"], by_case["c1"]
    assert (c0["rater"], c0["value"], c0["note"], float(c0["seconds"])) == (
        "alice",
        "pass",
        "good",
        4.5,
    )
    assert str(c0["rubric_version"]) == "1"
    assert (c1["value"], c1["note"]) == ("fail", "changed my mind")
    assert (c1["gold_value"], c1["adjudication_cause"]) == ("fail", "rater error")
    assert {"shown_swapped", "labelled_at", "tags", "rater_kind", "label_id"} <= set(columns)


def test_export_to_an_unknown_type_or_rubric_is_one_line(
    cli, labelled: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = cli("export", "labels", tmp_path / "labels.xlsx", "--db", labelled)
    assert result.code == 1 and "unknown output type" in result.err
    result = cli("export", "labels", tmp_path / "l.csv", "--db", labelled, "--rubric", "nope")
    assert result.code == 1 and "no rubric 'nope'" in result.err
    result = cli("export", "labels", tmp_path / "l.csv", "--db", tmp_path / "missing.duckdb")
    assert result.code == 1 and "no project at" in result.err
