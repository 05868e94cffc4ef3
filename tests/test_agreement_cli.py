"""`evaltui agreement` from the command line, checked against reference implementations."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from tests.conftest import PANDALM, REPO, write_jsonl, write_rubric

TESTSET = PANDALM / "testset-v1.json"
RAW = {0: "tie", 1: "A", 2: "B"}


@pytest.fixture(scope="module")
def pandalm_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evaltui.cli import main

    db = tmp_path_factory.mktemp("pandalm") / "evals.duckdb"
    assert (
        main(
            [
                "rubric",
                "import",
                str(REPO / "sample_data/pandalm/better-response.toml"),
                "--db",
                str(db),
            ]
        )
        == 0
    )
    assert main([
        "import", str(TESTSET), "--db", str(db), "--id", "idx", "--map", "input=instruction+input",
        "--map", "output_a=response1", "--map", "output_b=response2",
    ]) == 0  # fmt: skip
    for rater in ("annotator1", "annotator2", "annotator3"):
        assert main([
            "labels", "import", str(TESTSET), "--db", str(db), "--rater", rater,
            "--rubric", "better-response", "--case-id", "idx", "--value", rater, "--values", "1=A,2=B,0=tie",
        ]) == 0  # fmt: skip
    return db


@pytest.mark.skipif(not TESTSET.exists(), reason="shared PandaLM data not present")
def test_pandalm_published_kappas_come_out_of_the_cli(cli, pandalm_db: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("agreement", "--rubric", "better-response", "--db", pandalm_db, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    records = json.loads(TESTSET.read_text())
    raw = {r: [RAW[x[r]] for x in records] for r in ("annotator1", "annotator2", "annotator3")}
    published = {
        ("annotator1", "annotator2"): 0.85,
        ("annotator1", "annotator3"): 0.88,
        ("annotator2", "annotator3"): 0.86,
    }
    assert report["rubric"] == "better-response" and report["n_cases"] == 999
    for pair in report["pairs"]:
        first, second = pair["raters"]
        assert pair["n"] == 999
        assert round(pair["kappa"], 2) == published[(first, second)]
        assert pair["kappa"] == pytest.approx(cohen_kappa_score(raw[first], raw[second]), abs=1e-4)
        table = np.array(pair["confusion"]["matrix"], dtype=float)
        reference = cohens_kappa(table)
        assert pair["kappa_ci"] == pytest.approx(
            [reference.kappa_low, reference.kappa_upp], abs=1e-4
        )
        boot = pair["kappa_ci_bootstrap"]
        assert boot["low"] < pair["kappa"] < boot["high"] and boot["resamples"] == 2000
        for key in ("observed", "pabak", "ac1", "without_ties"):
            assert key in pair
    ratings = np.array([[{"A": 0, "tie": 1, "B": 2}[raw[r][i]] for r in raw] for i in range(999)])
    counts, _ = aggregate_raters(ratings)
    assert report["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(counts), abs=1e-4)
    assert round(report["fleiss_kappa"]["value"], 3) == 0.864
    alpha = krippendorff.alpha(reliability_data=ratings.T, level_of_measurement="nominal")
    assert report["krippendorff_alpha"]["value"] == pytest.approx(alpha, abs=1e-4)
    for key in ("fleiss_kappa", "krippendorff_alpha"):
        ci = report[key]["ci"]
        assert ci["low"] < report[key]["value"] < ci["high"]

    text = cli("agreement", "--rubric", "better-response", "--db", pandalm_db)
    assert "annotator1 vs annotator2: n=999" in text.out
    assert "κ 0.85 [0.82, 0.88]: almost perfect — see the 87 disagreements" in text.out


@pytest.mark.skipif(not TESTSET.exists(), reason="shared PandaLM data not present")
def test_slices_by_metadata_field(cli, pandalm_db: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "agreement",
        "--rubric",
        "better-response",
        "--db",
        pandalm_db,
        "--raters",
        "annotator1,annotator2",
        "--by",
        "cmp_key",
        "--json",
    )
    assert result.code == 0, result.err
    report = json.loads(result.out)
    records = json.loads(TESTSET.read_text())
    assert [p["raters"] for p in report["pairs"]] == [["annotator1", "annotator2"]]
    assert "fleiss_kappa" not in report
    slices = {s["value"]: s for s in report["slices"]}
    assert set(slices) == {r["cmp_key"] for r in records}
    assert sum(s["n_cases"] for s in slices.values()) == 999
    key, piece = next(iter(slices.items()))
    rows = [r for r in records if r["cmp_key"] == key]
    a, b = [RAW[r["annotator1"]] for r in rows], [RAW[r["annotator2"]] for r in rows]
    assert piece["pairs"][0]["kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-4)


def test_undefined_kappa_is_explained_not_nan(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    cases = write_jsonl(
        tmp_path / "c.jsonl", [{"id": f"c{i}", "input": "q", "output": "a"} for i in range(6)]
    )
    assert cli("import", cases, "--db", db).code == 0
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0
    rubric = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
    with Store.open(db) as store:
        for i in range(6):
            store.add_label(f"c{i}", rubric, "alice", "pass")
            store.add_label(f"c{i}", rubric, "bob", "pass")
    result = cli("agreement", "--rubric", "ok", "--db", db, "--json")
    pair = json.loads(result.out)["pairs"][0]
    assert pair["kappa"] is None and pair["kappa_ci"] is None
    assert pair["observed"] == 1.0
    assert "κ is undefined" in pair["reading"] and "'pass'" in pair["reading"]
    assert "NaN" not in result.out
    text = cli("agreement", "--rubric", "ok", "--db", db).out
    assert "Cohen's kappa       undefined" in text


def test_errors_are_one_line(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0
    result = cli("agreement", "--rubric", "ok", "--db", db)
    assert result.code == 1 and "needs labels from two raters" in result.err
    result = cli("agreement", "--rubric", "nope", "--db", db)
    assert result.code == 1 and "no rubric 'nope'" in result.err
    result = cli("agreement", "--rubric", "ok", "--db", db, "--raters", "zed,alice")
    assert result.code == 1 and "rater 'zed' has no labels" in result.err


def test_position_bias_of_a_rater_who_always_picks_left(tmp_path: Path, db: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cases = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": f"p{i}", "input": "q", "output_a": f"a{i}", "output_b": f"b{i}"}
            for i in range(30)
        ],
    )
    assert cli("import", cases, "--db", db).code == 0
    assert (
        cli(
            "rubric", "import", write_rubric(tmp_path / "pw.toml", "pw", "pairwise"), "--db", db
        ).code
        == 0
    )
    rubric = Rubric(name="pw", kind=RubricKind.pairwise, question="Which?")
    with Store.open(db) as store:
        for i in range(30):
            swapped = i % 2 == 1
            # Always the left side: A when shown in order, B when swapped.
            store.add_label(
                f"p{i}", rubric, "lefty", "B" if swapped else "A", shown_swapped=swapped
            )
            store.add_label(f"p{i}", rubric, "fair", "A", shown_swapped=swapped)
    report = json.loads(cli("agreement", "--rubric", "pw", "--db", db, "--json").out)
    bias = {row["rater"]: row for row in report["position_bias"]}
    assert bias["lefty"]["left"] == 30 and bias["lefty"]["p_value"] < 1e-6
    assert bias["fair"]["left"] == 15 and bias["fair"]["p_value"] == pytest.approx(1.0)


def test_a_kappa_interval_on_few_cases_stays_within_minus_one_and_one(
    cli, tmp_path: Path, db: Path
) -> None:  # type: ignore[no-untyped-def]
    # alice and bob: 4 pass/pass, 1 pass/fail, 4 fail/fail. κ ± 1.96·SE reaches 1.18.
    pairs = [("pass", "pass")] * 4 + [("pass", "fail")] + [("fail", "fail")] * 4
    cases = write_jsonl(
        tmp_path / "c.jsonl", [{"id": f"c{i}", "input": "q", "output": "a"} for i in range(9)]
    )
    assert cli("import", cases, "--db", db).code == 0
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0
    rubric = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
    with Store.open(db) as store:
        for i, (a, b) in enumerate(pairs):
            store.add_label(f"c{i}", rubric, "alice", a)
            store.add_label(f"c{i}", rubric, "bob", b)
    result = cli("agreement", "--rubric", "ok", "--db", db, "--json")
    pair = json.loads(result.out)["pairs"][0]
    reference = cohens_kappa(np.array([[4.0, 1.0], [0.0, 4.0]]))
    assert reference.kappa_upp > 1.0  # the unclipped interval
    assert pair["kappa_ci"] == pytest.approx([reference.kappa_low, 1.0], abs=1e-4)
