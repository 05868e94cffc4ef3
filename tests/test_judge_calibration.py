"""Judge calibration figures checked against independent references.

Verdicts are stored directly (no LLM), and every figure the product reports is
recomputed here from the raw lists with scikit-learn, statsmodels, numpy or a
plain Python loop.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, recall_score
from statsmodels.stats.contingency_tables import mcnemar

from evaltui.errors import InvalidInput
from evaltui.ingest import import_cases
from evaltui.judge.calibration import calibration_report, gold_labels
from evaltui.judge.versions import compare, history
from evaltui.models import AdjudicationCause, Judge, Rubric, RubricKind, Verdict
from evaltui.stats.judge import (
    mcnemar_exact,
    paired_bootstrap,
    rogan_gladen,
    rogan_gladen_bootstrap,
)
from evaltui.store import Store
from evaltui.store.coding import adjudicate
from evaltui.store.verdicts import add_verdict, count_test_views, split_of, split_seed
from tests.conftest import PANDALM, write_jsonl
from tests.test_pandalm import RUBRIC as PANDALM_RUBRIC
from tests.test_pandalm import import_all

RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
BINARY = ["pass", "fail"]
FLIP = {"pass": "fail", "fail": "pass"}


# Helpers -------------------------------------------------------------------


def add_cases(store: Store, folder: Path, ids: list[str]) -> None:
    path = write_jsonl(
        folder / "cases.jsonl", [{"id": c, "input": f"q {c}", "output": f"a {c}"} for c in ids]
    )
    assert import_cases(store, path).added == len(ids)


def new_judge(store: Store, prompt: str = "judge prompt", name: str = "j") -> Judge:
    judge = Judge(name=name, rubric=RUBRIC.name, model="test/model", prompt=prompt)
    store.save_judge(judge)
    return judge


def verdict(judge: Judge, case_id: str, value: str | None, **extra: Any) -> Verdict:
    error = None if value is not None else "answer 'maybe' is not one of the rubric's labels"
    return Verdict(
        judge_version=judge.version,
        case_id=case_id,
        value=value,
        raw=value or "maybe",
        error=error,
        critique=extra.pop("critique", f"critique of {case_id}"),
        **extra,
    )


def noisy(rng: np.random.Generator, truth: str, tpr: float, tnr: float) -> str:
    """A judge answer that passes a human pass with prob. tpr and fails a human fail with tnr."""
    if truth == "pass":
        return "pass" if rng.random() < tpr else "fail"
    return "fail" if rng.random() < tnr else "pass"


def kappa_ref(a: list[str], b: list[str], labels: list[str]) -> float:
    return float(cohen_kappa_score(a, b, labels=labels))


def rg_loop(
    pos: list[bool], neg: list[bool], unl: list[bool], *, resamples: int, seed: int
) -> tuple[float, float]:
    """Rogan–Gladen percentile interval by plain within-group resampling."""
    rnd = random.Random(seed)
    thetas = []
    for _ in range(resamples):
        tpr = sum(rnd.choices(pos, k=len(pos))) / len(pos)
        tnr = 1 - sum(rnd.choices(neg, k=len(neg))) / len(neg)
        p = sum(rnd.choices(unl, k=len(unl))) / len(unl)
        youden = tpr + tnr - 1
        if abs(youden) < 1e-12:
            continue
        thetas.append(min(1.0, max(0.0, (p + tnr - 1) / youden)))
    low, high = np.percentile(thetas, [2.5, 97.5])
    return float(low), float(high)


# One binary project: a human, a judge with errors, unlabelled cases ---------


LABELLED = [f"c{i:03d}" for i in range(160)]
UNLABELLED = [f"u{i:03d}" for i in range(240)]


def binary_project(store: Store, folder: Path) -> dict[str, Any]:
    """160 cases labelled by `ann` (note per case), 240 unlabelled; judge `j` answers
    150 labelled (10 of them error verdicts) and every unlabelled case."""
    rng = np.random.default_rng(42)
    store.save_rubric(RUBRIC)
    add_cases(store, folder, LABELLED + UNLABELLED)
    human = {c: ("pass" if rng.random() < 0.55 else "fail") for c in LABELLED}
    for c, v in human.items():
        store.add_label(c, RUBRIC, "ann", v, note=f"note on {c}")
    judge = new_judge(store)
    said: dict[str, str | None] = {}
    cost: dict[str, float | None] = {}
    latency: dict[str, float] = {}
    for i, c in enumerate(LABELLED[:150]):
        said[c] = None if i % 15 == 7 else noisy(rng, human[c], 0.85, 0.8)
        cost[c] = None if i % 20 == 3 else round(float(rng.uniform(0.0001, 0.01)), 6)
        latency[c] = round(float(rng.uniform(100, 3000)), 1)
        add_verdict(store, verdict(judge, c, said[c], cost_usd=cost[c], latency_ms=latency[c]))
    # The true pass rate of the unlabelled cases is 0.5; the judge sees it through its errors.
    unl_said = {
        c: noisy(rng, "pass" if i % 2 else "fail", 0.85, 0.8) for i, c in enumerate(UNLABELLED)
    }
    for c, v in unl_said.items():
        add_verdict(store, verdict(judge, c, v, cost_usd=0.5, latency_ms=99999.0))
    return {
        "judge": judge,
        "human": human,
        "said": said,
        "cost": cost,
        "latency": latency,
        "unl_said": unl_said,
    }


# 1. Judge figures against scikit-learn and numpy -------------------------


def test_report_figures_equal_sklearn_and_numpy(store: Store, tmp_path: Path) -> None:
    p = binary_project(store, tmp_path)
    judge, human, said = p["judge"], p["human"], p["said"]
    report = calibration_report(store, RUBRIC, judge, gold_rater="ann", split="all", resamples=200)

    ok = sorted(c for c, v in said.items() if v is not None)
    h = [human[c] for c in ok]
    j = [str(said[c]) for c in ok]
    assert report["n"] == len(ok) == 140
    assert report["errors"] == sum(v is None for v in said.values()) == 10
    assert report["pending"] == len(LABELLED) - len(said) == 10
    assert report["case_ids"] == ok  # error verdicts are left out of every figure
    assert report["judge_kappa"] == pytest.approx(round(kappa_ref(h, j, BINARY), 4), abs=1e-12)
    assert report["confusion"]["labels"] == BINARY
    assert report["confusion"]["rows"] == "human"
    assert report["confusion"]["matrix"] == confusion_matrix(h, j, labels=BINARY).tolist()
    assert report["positive_class"] == "pass"
    tpr = recall_score(h, j, pos_label="pass")
    tnr = recall_score(h, j, pos_label="fail")
    assert report["tpr"] == pytest.approx(round(tpr, 4), abs=1e-12)
    assert report["tnr"] == pytest.approx(round(tnr, 4), abs=1e-12)
    low, high = report["judge_kappa_ci"]
    assert low < report["judge_kappa"] < high

    # Cost and latency over every call on the scored cases, error calls included.
    costs = [v for v in p["cost"].values() if v is not None]
    assert report["cost_usd"] == pytest.approx(float(np.sum(costs)), abs=1e-6)
    assert report["cost_unknown_calls"] == sum(v is None for v in p["cost"].values())
    assert report["latency_ms_p50"] == pytest.approx(
        float(np.median(list(p["latency"].values()))), abs=0.05
    )

    expected = sorted(
        (c, human[c], said[c], f"critique of {c}", f"note on {c}")
        for c in ok
        if human[c] != said[c]
    )
    got = sorted(
        (d["case_id"], d["human"], d["judge"], d["critique"], d["note"])
        for d in report["disagreements"]
    )
    assert got == expected and len(got) > 10
    errors = {e["case_id"]: e for e in report["error_cases"]}
    assert sorted(errors) == sorted(c for c, v in said.items() if v is None)
    assert all(e["raw"] == "maybe" and "maybe" in e["error"] for e in errors.values())


def test_latest_verdict_of_a_case_is_the_one_scored(store: Store, tmp_path: Path) -> None:
    p = binary_project(store, tmp_path)
    judge, human = p["judge"], p["human"]
    errored = next(c for c, v in p["said"].items() if v is None)
    add_verdict(store, verdict(judge, errored, human[errored], critique="second try"))
    report = calibration_report(store, RUBRIC, judge, split="all", resamples=200)
    assert report["errors"] == 9 and report["n"] == 141
    assert errored in report["case_ids"]
    # Without a named rater the single human is the gold, and the note names them.
    assert report["gold"] == "rater ann"
    assert all(d["note"] == f"ann: note on {d['case_id']}" for d in report["disagreements"])


# 2. Gold labels ------------------------------------------------------------


def test_gold_majority_named_rater_and_adjudication(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ids = [f"g{i:02d}" for i in range(40)]
    store.save_rubric(RUBRIC)
    add_cases(store, tmp_path, ids)
    votes: dict[str, dict[str, str]] = {r: {} for r in ("r1", "r2", "r3")}
    for c in ids:
        for r in votes:
            votes[r][c] = "pass" if rng.random() < 0.5 else "fail"
            store.add_label(c, RUBRIC, r, votes[r][c], note=f"{r} on {c}")
    majority = {c: Counter(votes[r][c] for r in votes).most_common(1)[0][0] for c in ids}
    gold = gold_labels(store, RUBRIC)
    assert gold.values == majority
    assert gold.no_gold == 0
    assert gold.raters == ["r1", "r2", "r3"]
    # Mixed votes exist, so the majority is not any one rater's labels.
    assert all(majority != votes[r] for r in votes)

    assert gold_labels(store, RUBRIC, "r2").values == votes["r2"]
    assert gold_labels(store, RUBRIC, "r2").notes["g03"] == "r2 on g03"
    with pytest.raises(InvalidInput):
        gold_labels(store, RUBRIC, "nobody")

    target = ids[5]
    adjudicate(
        store, target, RUBRIC.name, FLIP[majority[target]], AdjudicationCause.rubric_gap,
        "the rubric is silent on this", "lead",
    )  # fmt: skip
    for rater in (None, "r2"):
        gold = gold_labels(store, RUBRIC, rater)
        assert gold.values[target] == FLIP[majority[target]]
        assert gold.notes[target].startswith("adjudicated (rubric gap)")
        assert gold.source.startswith("adjudicated where present")
        others = {c: v for c, v in gold.values.items() if c != target}
        base = majority if rater is None else votes["r2"]
        assert others == {c: v for c, v in base.items() if c != target}


def test_two_raters_split_evenly_have_no_gold(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = [f"t{i:02d}" for i in range(60)]
    store.save_rubric(RUBRIC)
    add_cases(store, tmp_path, ids)
    a = {c: "pass" if rng.random() < 0.6 else "fail" for c in ids}
    b = {c: a[c] if rng.random() < 0.8 else FLIP[a[c]] for c in ids}
    for c in ids:
        store.add_label(c, RUBRIC, "alice", a[c])
        store.add_label(c, RUBRIC, "bob", b[c])
    split_cases = sorted(c for c in ids if a[c] != b[c])
    assert len(split_cases) >= 5
    gold = gold_labels(store, RUBRIC)
    assert gold.values == {c: a[c] for c in ids if a[c] == b[c]}
    assert gold.no_gold == len(split_cases)

    adjudicate(
        store, split_cases[0], RUBRIC.name, b[split_cases[0]],
        AdjudicationCause.rater_error, "alice misread", "lead",
    )  # fmt: skip
    gold = gold_labels(store, RUBRIC)
    assert gold.values[split_cases[0]] == b[split_cases[0]]
    assert gold.no_gold == len(split_cases) - 1

    judge = new_judge(store)
    for c in ids:
        add_verdict(store, verdict(judge, c, a[c]))
    report = calibration_report(store, RUBRIC, judge, split="all", resamples=500)
    assert report["no_gold"] == len(split_cases) - 1
    assert report["n"] == len(gold.values)
    ref = kappa_ref([a[c] for c in ids], [b[c] for c in ids], BINARY)
    assert report["human_kappa"] == pytest.approx(round(ref, 4), abs=1e-12)
    assert report["human_raters"] == ["alice", "bob"]
    low, high = report["human_kappa_ci"]
    assert low < report["human_kappa"] < high
    # Cases the humans split on are not "unlabelled": they are no random draw of the
    # unlabelled population, so the corrected pass rate leaves them out.
    assert report["corrected_pass_rate"] is None


# 3. The locked split -------------------------------------------------------


def test_split_is_deterministic_and_20_40_40() -> None:
    ids = [f"case-{i}" for i in range(5000)]
    first = [split_of(c, 11) for c in ids]
    assert first == [split_of(c, 11) for c in ids]
    shares = {k: n / len(ids) for k, n in Counter(first).items()}
    assert shares["train"] == pytest.approx(0.2, abs=0.025)
    assert shares["dev"] == pytest.approx(0.4, abs=0.025)
    assert shares["test"] == pytest.approx(0.4, abs=0.025)
    other = [split_of(c, 12) for c in ids]
    changed = sum(x != y for x, y in zip(first, other, strict=True))
    assert 0.5 < changed / len(ids) < 0.75  # independent draws differ ~64% of the time


def test_seed_is_locked_and_test_views_counted(store: Store, tmp_path: Path) -> None:
    p = binary_project(store, tmp_path)
    judge, human, said = p["judge"], p["human"], p["said"]
    assert split_seed(store, "other", 9) == 9
    assert split_seed(store, "other", 1) == 9

    dev = calibration_report(store, RUBRIC, judge, seed=5, resamples=200)
    assert dev["split_seed"] == 5 and dev["test_views"] == 0
    again = calibration_report(store, RUBRIC, judge, seed=11, resamples=200)
    assert again["split_seed"] == 5
    assert again["case_ids"] == dev["case_ids"]
    assert split_seed(store, RUBRIC.name, 99) == 5

    for split in ("dev", "test"):
        mine = sorted(c for c in LABELLED if split_of(c, 5) == split)
        ok = [c for c in mine if said.get(c) is not None]
        report = calibration_report(store, RUBRIC, judge, split=split, seed=5, resamples=200)
        assert report["case_ids"] == ok
        h, j = [human[c] for c in ok], [str(said[c]) for c in ok]
        assert report["confusion"]["matrix"] == confusion_matrix(h, j, labels=BINARY).tolist()
    assert count_test_views(store, RUBRIC.name) == 1
    views = [
        calibration_report(store, RUBRIC, judge, split=s, resamples=200)["test_views"]
        for s in ("dev", "all", "dev", "test")
    ]
    assert views == [1, 2, 2, 3]
    other = new_judge(store, prompt="another prompt")
    compare(store, RUBRIC, judge, other, split="dev", resamples=100)
    history(store, RUBRIC, split="dev")
    assert count_test_views(store, RUBRIC.name) == 3
    compare(store, RUBRIC, judge, other, split="test", resamples=100)
    history(store, RUBRIC, split="all")
    assert count_test_views(store, RUBRIC.name) == 5


# 4. Rogan–Gladen, McNemar, paired bootstrap, compare ----------------------


@pytest.mark.parametrize(
    ("p", "tpr", "tnr"),
    [(0.5, 0.9, 0.8), (0.3, 0.7, 0.95), (0.62, 0.85, 0.8), (0.05, 0.9, 0.8), (0.99, 0.9, 0.8)],
)
def test_rogan_gladen_equals_hand_formula(p: float, tpr: float, tnr: float) -> None:
    hand = (p - (1 - tnr)) / (tpr - (1 - tnr))
    assert rogan_gladen(p, tpr, tnr) == pytest.approx(min(1.0, max(0.0, hand)), abs=1e-12)


def test_rogan_gladen_of_a_coin_is_undefined() -> None:
    assert rogan_gladen(0.4, 0.5, 0.5) is None
    assert rogan_gladen(0.4, 0.7, 0.3) is None


def test_rogan_gladen_bootstrap_matches_plain_loop() -> None:
    pos = [True] * 52 + [False] * 8
    neg = [True] * 9 + [False] * 41
    unl = [True] * 230 + [False] * 170
    ci = rogan_gladen_bootstrap(pos, neg, unl, resamples=6000, seed=3)
    low, high = rg_loop(pos, neg, unl, resamples=6000, seed=4)
    assert ci.low == pytest.approx(low, abs=0.015)
    assert ci.high == pytest.approx(high, abs=0.015)
    point = rogan_gladen(230 / 400, 52 / 60, 41 / 50)
    assert ci.low is not None and ci.high is not None and point is not None
    assert ci.low < point < ci.high


def test_corrected_pass_rate_in_the_report(store: Store, tmp_path: Path) -> None:
    p = binary_project(store, tmp_path)
    judge, human, said, unl = p["judge"], p["human"], p["said"], p["unl_said"]
    report = calibration_report(store, RUBRIC, judge, split="all", resamples=4000, seed=2)
    cpr = report["corrected_pass_rate"]
    ok = [c for c, v in said.items() if v is not None]
    h, j = [human[c] for c in ok], [str(said[c]) for c in ok]
    tpr = recall_score(h, j, pos_label="pass")
    tnr = recall_score(h, j, pos_label="fail")
    observed = sum(v == "pass" for v in unl.values()) / len(unl)
    assert cpr["n_unlabelled"] == len(UNLABELLED)
    assert cpr["observed"] == pytest.approx(round(observed, 4), abs=1e-12)
    assert cpr["youden"] == pytest.approx(round(tpr + tnr - 1, 4), abs=1e-12)
    hand = (observed + tnr - 1) / (tpr + tnr - 1)
    assert cpr["corrected"] == pytest.approx(round(hand, 4), abs=1e-12)
    assert "warning" not in cpr

    pos = [said[c] == "pass" for c in ok if human[c] == "pass"]
    neg = [said[c] == "pass" for c in ok if human[c] == "fail"]
    low, high = rg_loop(pos, neg, [v == "pass" for v in unl.values()], resamples=4000, seed=8)
    assert cpr["ci"][0] == pytest.approx(low, abs=0.02)
    assert cpr["ci"][1] == pytest.approx(high, abs=0.02)


def test_weak_judge_gets_a_warning(store: Store, tmp_path: Path) -> None:
    labelled = [f"w{i:02d}" for i in range(40)]
    unlabelled = [f"x{i:02d}" for i in range(30)]
    store.save_rubric(RUBRIC)
    add_cases(store, tmp_path, labelled + unlabelled)
    judge = new_judge(store)
    # 20 human passes of which the judge passes 12 (TPR 0.6); 20 fails, 12 failed (TNR 0.6).
    for i, c in enumerate(labelled):
        truth = "pass" if i < 20 else "fail"
        store.add_label(c, RUBRIC, "ann", truth)
        right = (i % 20) < 12
        add_verdict(store, verdict(judge, c, truth if right else FLIP[truth]))
    for i, c in enumerate(unlabelled):
        add_verdict(store, verdict(judge, c, "pass" if i < 15 else "fail"))
    report = calibration_report(store, RUBRIC, judge, split="all", resamples=200)
    assert (report["tpr"], report["tnr"]) == (0.6, 0.6)
    cpr = report["corrected_pass_rate"]
    assert cpr["youden"] == pytest.approx(0.2)
    assert "warning" in cpr and "0.20" in cpr["warning"]
    assert cpr["corrected"] == pytest.approx(0.5)  # (0.5 + 0.6 − 1) / 0.2


@pytest.mark.parametrize(
    ("a_only", "b_only"), [(12, 3), (0, 0), (5, 5), (0, 7), (30, 18), (1, 0), (40, 61)]
)
def test_mcnemar_exact_equals_statsmodels(a_only: int, b_only: int) -> None:
    table = np.array([[50, a_only], [b_only, 20]])
    expected = mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_paired_bootstrap_equals_plain_loop(k: int) -> None:
    rng = np.random.default_rng(k)
    n, resamples, seed = 90, 300, 17
    gold = rng.integers(0, k, n)
    pred_a = np.where(rng.random(n) < 0.7, gold, rng.integers(0, k, n))
    pred_b = np.where(rng.random(n) < 0.85, gold, rng.integers(0, k, n))
    got = paired_bootstrap(gold, pred_a, pred_b, k, resamples=resamples, seed=seed)

    # The same case draws the product documents: one row of n indices per replicate.
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    labels = list(range(k))
    dk, dtpr, dtnr = [], [], []
    for row in rows:
        g, a, b = gold[row], pred_a[row], pred_b[row]
        dk.append(cohen_kappa_score(g, b, labels=labels) - cohen_kappa_score(g, a, labels=labels))
        if k == 2:
            dtpr.append(np.mean(b[g == 0] == 0) - np.mean(a[g == 0] == 0))
            dtnr.append(np.mean(b[g == 1] == 1) - np.mean(a[g == 1] == 1))
    expected = {"kappa": dk, **({"tpr": dtpr, "tnr": dtnr} if k == 2 else {})}
    assert set(got) == set(expected)
    for key, values in expected.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert got[key].low == pytest.approx(low, abs=1e-9), key
        assert got[key].high == pytest.approx(high, abs=1e-9), key


def test_compare_deltas_are_differences_of_single_reports(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [f"v{i:03d}" for i in range(120)]
    store.save_rubric(RUBRIC)
    add_cases(store, tmp_path, ids)
    human = {c: "pass" if rng.random() < 0.5 else "fail" for c in ids}
    for c in ids:
        store.add_label(c, RUBRIC, "ann", human[c])
    before, after = new_judge(store, "prompt v1"), new_judge(store, "prompt v2")
    said_a = {c: noisy(rng, human[c], 0.7, 0.65) for c in ids}
    said_b = {c: noisy(rng, human[c], 0.9, 0.85) for c in ids}
    for c in ids:
        add_verdict(store, verdict(before, c, said_a[c]))
        add_verdict(store, verdict(after, c, said_b[c]))

    ra = calibration_report(store, RUBRIC, before, split="all", resamples=200)
    rb = calibration_report(store, RUBRIC, after, split="all", resamples=200)
    result = compare(store, RUBRIC, before, after, split="all", resamples=1000)
    assert result["n"] == ra["n"] == rb["n"] == len(ids)
    for key, field in (("kappa", "judge_kappa"), ("tpr", "tpr"), ("tnr", "tnr")):
        d = result["deltas"][key]
        assert (d["before"], d["after"]) == (ra[field], rb[field]), key
        assert d["delta"] == pytest.approx(rb[field] - ra[field], abs=1e-9), key
        assert d["ci"][0] < d["delta"] < d["ci"][1], key
    assert result["deltas"]["kappa"]["delta"] > 0.2

    a_only = sum(said_a[c] == human[c] != said_b[c] for c in ids)
    b_only = sum(said_b[c] == human[c] != said_a[c] for c in ids)
    assert result["mcnemar"]["before_only_right"] == a_only
    assert result["mcnemar"]["after_only_right"] == b_only
    p_ref = mcnemar(np.array([[0, a_only], [b_only, 0]]), exact=True).pvalue
    assert result["mcnemar"]["p_value"] == pytest.approx(round(p_ref, 6), abs=1e-12)

    rows = {row["version"]: row for row in history(store, RUBRIC, split="all")["versions"]}
    for judge, single in ((before, ra), (after, rb)):
        assert rows[judge.version]["judge_kappa"] == single["judge_kappa"]
        assert rows[judge.version]["tpr"] == single["tpr"]

    # An error verdict of one judge takes the case out of the comparison for both.
    add_verdict(store, verdict(after, ids[0], None))
    fewer = compare(store, RUBRIC, before, after, split="all", resamples=200)
    rest = ids[1:]
    assert fewer["n"] == len(rest)
    ref = kappa_ref([human[c] for c in rest], [said_a[c] for c in rest], BINARY)
    assert fewer["deltas"]["kappa"]["before"] == pytest.approx(round(ref, 4), abs=1e-12)


# 5. PandaLM: an imported judge against the three annotators ----------------

TESTSET = PANDALM / "testset-v1.json"
GPT = PANDALM / "gpt-3.5-turbo-testset-v1.json"
PAIRWISE = ["A", "tie", "B"]
HUMAN_RAW = {0: "tie", 1: "A", 2: "B"}
GPT_RAW = {"1": "A", "2": "B", "Tie": "tie"}


@pytest.mark.skipif(not (TESTSET.exists() and GPT.exists()), reason="PandaLM data not present")
def test_pandalm_gpt35_against_human_majority(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("rubric", "import", PANDALM_RUBRIC, "--db", db).code == 0
    import_all(cli, db)
    result = cli(
        "judge", "import", GPT, "--db", db, "--rubric", "better-response",
        "--judge", "gpt35", "--model", "gpt-3.5-turbo", "--case-id", "idx",
        "--value", "gpt_result", "--values", "1=A,2=B,Tie=tie", "--critique", "gpt_reason",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "999 new verdict(s), 25 of them error verdicts" in result.out

    # The references, straight from the JSON files.
    records = json.loads(TESTSET.read_text())
    gpt = {str(r["idx"]): r for r in json.loads(GPT.read_text())}
    raw_answers = Counter(str(r["gpt_result"]) for r in gpt.values())
    assert raw_answers["garbage"] == 25
    assert set(raw_answers) == {*GPT_RAW, "garbage"}
    majority = {}
    for r in records:
        top, count = Counter(
            HUMAN_RAW[r[a]] for a in ("annotator1", "annotator2", "annotator3")
        ).most_common(1)[0]
        assert count >= 2
        majority[str(r["idx"])] = top
    matched = sorted(c for c in majority if gpt[c]["gpt_result"] in GPT_RAW)
    assert len(matched) == 974
    h = [majority[c] for c in matched]
    j = [GPT_RAW[gpt[c]["gpt_result"]] for c in matched]

    result = cli(
        "judge", "report", "--db", db, "--rubric", "better-response", "--judge", "gpt35",
        "--split", "all", "--json", "--resamples", "200",
    )  # fmt: skip
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["errors"] == 25
    assert report["n"] == len(matched)
    assert report["pending"] == 0 and report["no_gold"] == 0
    assert report["judge_kappa"] == pytest.approx(round(kappa_ref(h, j, PAIRWISE), 4), abs=1e-12)
    assert report["confusion"]["labels"] == PAIRWISE
    assert report["confusion"]["matrix"] == confusion_matrix(h, j, labels=PAIRWISE).tolist()
    assert sorted(e["raw"] for e in report["error_cases"]) == ["garbage"] * 25
    some = report["disagreements"][0]
    assert some["critique"] == gpt[some["case_id"]]["gpt_reason"]
    assert some["human"] == majority[some["case_id"]] != some["judge"]

    with Store.open(db) as store:
        gold = gold_labels(store, store.get_rubric("better-response"))
    assert Counter(gold.values.values()) == {"tie": 105, "A": 422, "B": 472}
    assert gold.values == majority
