"""A rubric's judge versions side by side: history on common cases, and a paired comparison."""

from __future__ import annotations

from typing import Any

import numpy as np

from evaltui.agreement import categories
from evaltui.judge.calibration import Gold, Outcome, ReportSplit, case_split, gold_labels, outcomes
from evaltui.models import Judge, Rubric, RubricKind
from evaltui.stats import agreement as st
from evaltui.stats import judge as sj
from evaltui.store import Store
from evaltui.store.verdicts import look_at_split


def _scored_cases(
    store: Store, rubric: Rubric, gold: Gold, split: ReportSplit, seed: int
) -> list[str]:
    _, which = case_split(store, rubric, seed)
    return sorted(c for c in gold.values if split == "all" or which(c) == split)


def _figures(
    gold: Gold, answers: dict[str, Outcome], cases: list[str], rubric: Rubric
) -> dict[str, Any]:
    ok = [c for c in cases if answers[c].value is not None]
    human = [gold.values[c] for c in ok]
    said = [str(answers[c].value) for c in ok]
    table = st.confusion(human, said, categories(rubric))
    kappa = st.cohen_kappa(table)
    figures: dict[str, Any] = {
        "n": len(ok),
        "errors": len(cases) - len(ok),
        "judge_kappa": None if kappa is None else round(kappa, 4),
        "judge_kappa_ci": None
        if (ci := st.kappa_analytic_ci(table)) is None
        else [round(ci[0], 4), round(ci[1], 4)],
    }
    if rubric.kind is RubricKind.binary:
        tpr, tnr = sj.rates(human, said)
        figures.update(tpr=tpr and round(tpr, 4), tnr=tnr and round(tnr, 4))
    costs = [v.cost_usd for c in cases for v in answers[c].calls if v.cost_usd is not None]
    figures["cost_usd"] = round(sum(costs), 6) if costs else None
    return figures


def history(
    store: Store,
    rubric: Rubric,
    *,
    gold_rater: str | None = None,
    split: ReportSplit = "dev",
    seed: int = 0,
) -> dict[str, Any]:
    """Every judge version of the rubric, each scored on the cases all run versions answered."""
    gold = gold_labels(store, rubric, gold_rater)
    views = look_at_split(store, rubric.name, split, "*", "history")
    scored = _scored_cases(store, rubric, gold, split, seed)
    judges = store.judges(rubric.name)
    answered = {j.version: outcomes(store, j, rubric) for j in judges}
    run = [j for j in judges if any(c in answered[j.version] for c in scored)]
    common = [
        c
        for c in scored
        if all(c in answered[j.version] for j in run) and not any(c in j.few_shot for j in run)
    ]
    rows = []
    for judge in judges:
        row: dict[str, Any] = {
            "name": judge.name,
            "version": judge.version,
            "model": judge.model,
            "run": judge in run,
        }
        if judge in run:
            row.update(_figures(gold, answered[judge.version], common, rubric))
        rows.append(row)
    return {
        "rubric": rubric.name,
        "split": split,
        "test_views": views,
        "common_cases": len(common),
        "versions": rows,
    }


def compare(
    store: Store,
    rubric: Rubric,
    before: Judge,
    after: Judge,
    *,
    gold_rater: str | None = None,
    split: ReportSplit = "dev",
    seed: int = 0,
    resamples: int = 2000,
) -> dict[str, Any]:
    """`after` minus `before` on the cases both answered: Δκ and ΔTPR/ΔTNR with paired
    bootstrap intervals, and McNemar's exact test on which cases each got right."""
    gold = gold_labels(store, rubric, gold_rater)
    look_at_split(store, rubric.name, split, after.version, "compare")
    a, b = outcomes(store, before, rubric), outcomes(store, after, rubric)
    cases = [
        c
        for c in _scored_cases(store, rubric, gold, split, seed)
        if a.get(c) is not None
        and b.get(c) is not None
        and a[c].value is not None
        and b[c].value is not None
        and c not in before.few_shot
        and c not in after.few_shot
    ]
    cats = categories(rubric)
    truth = sj.encode([gold.values[c] for c in cases], cats)
    pred_a = sj.encode([str(a[c].value) for c in cases], cats)
    pred_b = sj.encode([str(b[c].value) for c in cases], cats)
    right_a, right_b = pred_a == truth, pred_b == truth
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    intervals = sj.paired_bootstrap(
        truth, pred_a, pred_b, len(cats), resamples=resamples, seed=seed
    )
    fa, fb = _figures(gold, a, cases, rubric), _figures(gold, b, cases, rubric)
    deltas: dict[str, Any] = {}
    for key in ("kappa", "tpr", "tnr") if len(cats) == 2 else ("kappa",):
        field = "judge_kappa" if key == "kappa" else key
        ci = intervals[key]
        deltas[key] = {
            "before": fa[field],
            "after": fb[field],
            "delta": None
            if fa[field] is None or fb[field] is None
            else round(fb[field] - fa[field], 4),
            "ci": None
            if ci.low is None or ci.high is None
            else [round(ci.low, 4), round(ci.high, 4)],
        }
    return {
        "rubric": rubric.name,
        "split": split,
        "before": before.version,
        "after": after.version,
        "n": len(cases),
        "deltas": deltas,
        "mcnemar": {
            "before_only_right": a_only,
            "after_only_right": b_only,
            "p_value": round(sj.mcnemar_exact(a_only, b_only), 6),
        },
    }
