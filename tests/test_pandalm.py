"""The PandaLM test set (999 pairwise cases, three human raters) through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaltui.store import Store
from tests.conftest import PANDALM, REPO

TESTSET = PANDALM / "testset-v1.json"
RUBRIC = REPO / "sample_data" / "pandalm" / "better-response.toml"
RAW = {0: "tie", 1: "A", 2: "B"}

pytestmark = pytest.mark.skipif(not TESTSET.exists(), reason="shared PandaLM data not present")


def import_all(cli, db: Path) -> list[str]:  # type: ignore[no-untyped-def]
    outputs = []
    result = cli(
        "import", TESTSET, "--db", db,
        "--map", "input=instruction+input", "--map", "output_a=response1",
        "--map", "output_b=response2", "--id", "idx",
    )  # fmt: skip
    assert result.code == 0, result.err
    outputs.append(result.out)
    for rater in ("annotator1", "annotator2", "annotator3"):
        result = cli(
            "labels", "import", TESTSET, "--db", db, "--rater", rater,
            "--rubric", "better-response", "--case-id", "idx", "--value", rater,
            "--values", "1=A,2=B,0=tie",
        )  # fmt: skip
        assert result.code == 0, result.err
        outputs.append(result.out)
    return outputs


def test_pandalm_imports_999_cases_and_2997_labels_once(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("rubric", "import", RUBRIC, "--db", db).code == 0
    first = import_all(cli, db)
    assert "999 new cases" in first[0]
    assert all("999 new label(s)" in out for out in first[1:])

    again = import_all(cli, db)
    assert "0 new cases, 999 already in the project" in again[0]
    assert all("0 new label(s), 999 unchanged" in out for out in again[1:])

    records = json.loads(TESTSET.read_text())
    with Store.open(db) as store:
        assert store.count_cases() == 999
        assert store.count_labels("better-response") == 2997
        assert store.count_labels(current=False) == 2997
        for rater in ("annotator1", "annotator2", "annotator3"):
            stored = {lb.case_id: lb.value for lb in store.current_labels("better-response", rater)}
            expected = {str(r["idx"]): RAW[r[rater]] for r in records}
            assert stored == expected
        case = store.get_case("157")
        assert case.kind == "pair"
        assert case.input == f"{records[157]['instruction']}\n\n{records[157]['input']}"
        # The upstream file has JSON `true` as a model's answer; it is kept as text.
        assert (case.output_a, case.output_b) == ("true", "True.")
        assert case.metadata["cmp_key"] == "bloom-7b_cerebras-gpt-6.7B"


def test_boolean_answers_are_reported_when_imported(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "import", TESTSET, "--db", db, "--map", "input=instruction+input",
        "--map", "output_a=response1", "--map", "output_b=response2", "--id", "idx",
    )  # fmt: skip
    assert "6 number or true/false value(s) stored as text" in result.out
    assert "record 158: field 'output_a'" in result.err
