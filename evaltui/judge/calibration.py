"""Calibrating a judge against the humans: gold labels, the judge's outcome per case, the report.

Gold is the adjudicated label where there is one, else the named rater's
label, else (no rater named) the strict majority of the human raters; a case
where the humans split evenly and nobody adjudicated has no gold and is left
out. Figures are read on one split of the rubric's locked train/dev/test
split (dev by default); every look at the test split is counted.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from evaltui.agreement import agreement_report, categories, pair_figures
from evaltui.errors import InvalidInput
from evaltui.models import Judge, RaterKind, Rubric, RubricKind, Verdict
from evaltui.stats import agreement as st
from evaltui.stats import judge as sj
from evaltui.store import Store
from evaltui.store.coding import adjudications
from evaltui.store.verdicts import (
    look_at_split,
    split_of,
    split_seed,
    verdicts,
)

ReportSplit = Literal["dev", "test", "all"]
WEAK_YOUDEN = 0.3
"""Below this TPR + TNR − 1 the corrected pass rate swings widely with small errors in either rate."""


@dataclass
class Gold:
    """The human gold label of each case, and where it came from."""

    values: dict[str, str]
    notes: dict[str, str]
    source: str
    raters: list[str]
    no_gold: int = 0
    """Cases the humans labelled but split on, with no adjudication."""
    labelled: set[str] = field(default_factory=set)
    """Every case any human labelled (gold or not)."""


def gold_labels(store: Store, rubric: Rubric, rater: str | None = None) -> Gold:
    """Adjudicated labels first, then the named rater, else the human majority."""
    humans = {r.name for r in store.raters() if r.kind is RaterKind.human}
    by_case: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for label in store.current_labels(rubric.name):
        if label.value is not None and label.rater in humans:
            by_case[label.case_id].append((label.rater, label.value, label.note))
    raters = sorted({r for votes in by_case.values() for r, _, _ in votes})
    if rater is not None and rater not in raters:
        raise InvalidInput(
            f"rater {rater!r} has no labels for rubric {rubric.name!r} "
            f"(raters: {', '.join(raters) or 'none'})"
        )
    values: dict[str, str] = {}
    notes: dict[str, str] = {}
    split_votes: set[str] = set()
    for case_id, votes in by_case.items():
        if rater is not None:
            mine = [(v, n) for r, v, n in votes if r == rater]
            if mine:
                values[case_id], notes[case_id] = mine[0]
            continue
        counts = Counter(v for _, v, _ in votes).most_common()
        if counts[0][1] * 2 <= len(votes):  # no strict majority
            split_votes.add(case_id)
            continue
        values[case_id] = counts[0][0]
        notes[case_id] = " / ".join(f"{r}: {n}" for r, v, n in votes if v == counts[0][0] and n)
    adjudicated = adjudications(store, rubric.name)
    for case_id, adjudication in adjudicated.items():
        split_votes.discard(case_id)
        values[case_id] = adjudication.value
        notes[case_id] = f"adjudicated ({adjudication.cause.value}): {adjudication.rationale}"
    if rater:
        base = f"rater {rater}"
    elif len(raters) == 1:
        base = f"rater {raters[0]}"
    else:
        base = f"majority of {', '.join(raters)}" if raters else "no human labels yet"
    source = f"adjudicated where present, else {base}" if adjudicated else base
    labelled = set(by_case) | set(adjudicated)
    return Gold(values, notes, source, [rater] if rater else raters, len(split_votes), labelled)


@dataclass
class Outcome:
    """A judge's answer for one case: both orders combined for pairwise rubrics."""

    value: str | None
    critique: str
    calls: list[Verdict] = field(default_factory=list)
    consistent: bool | None = None
    """Pairwise only: whether both orders gave the same answer."""

    @property
    def error(self) -> str | None:
        """Why there is no value, if there is none."""
        errors = [v.error for v in self.calls if v.value is None]
        return errors[0] if errors else None


def outcomes(store: Store, judge: Judge, rubric: Rubric) -> dict[str, Outcome]:
    """Every case the judge has fully answered; pairwise orders that disagree become a tie."""
    by_case: dict[str, dict[bool, Verdict]] = defaultdict(dict)
    for verdict in verdicts(store, judge.version):
        by_case[verdict.case_id][verdict.swapped] = verdict
    result: dict[str, Outcome] = {}
    for case_id, calls in by_case.items():
        if rubric.kind is RubricKind.binary or judge.source is not None:
            v = calls.get(False)  # imported verdicts come in the case's order only
            if v is not None:
                result[case_id] = Outcome(v.value, v.critique, [v])
            continue
        if set(calls) != {False, True}:
            continue  # one order still to ask
        first, second = calls[False], calls[True]
        if first.value is None or second.value is None:
            result[case_id] = Outcome(None, first.critique, [first, second])
            continue
        same = first.value == second.value
        critique = first.critique if same else f"{first.critique}\n(swapped) {second.critique}"
        result[case_id] = Outcome(first.value if same else "tie", critique, [first, second], same)
    return result


def case_split(store: Store, rubric: Rubric, seed: int) -> tuple[int, Any]:
    """The rubric's locked split seed and a function from case id to split."""
    locked = split_seed(store, rubric.name, seed)
    return locked, lambda case_id: split_of(case_id, locked)


def _in_split(case_id: str, split: ReportSplit, which: Any) -> bool:
    return split == "all" or which(case_id) == split


def calibration_report(
    store: Store,
    rubric: Rubric,
    judge: Judge,
    *,
    gold_rater: str | None = None,
    split: ReportSplit = "dev",
    seed: int = 0,
    resamples: int = 2000,
    purpose: str = "report",
) -> dict[str, Any]:
    """The judge's figures against the human gold on one split (the `judge report --json` object)."""
    gold = gold_labels(store, rubric, gold_rater)
    locked, which = case_split(store, rubric, seed)
    views = look_at_split(store, rubric.name, split, judge.version, purpose)
    answers = outcomes(store, judge, rubric)
    scored = sorted(
        c for c in gold.values if _in_split(c, split, which) and c not in judge.few_shot
    )
    done = [c for c in scored if c in answers]
    ok = [c for c in done if answers[c].value is not None]
    cats = categories(rubric)
    human = [gold.values[c] for c in ok]
    said = [str(answers[c].value) for c in ok]
    figures = pair_figures(
        human,
        said,
        cats,
        pairwise=rubric.kind is RubricKind.pairwise,
        resamples=resamples,
        seed=seed,
    )
    calls = [v for c in done for v in answers[c].calls]
    costs = [v.cost_usd for v in calls if v.cost_usd is not None]
    latencies = [v.latency_ms for v in calls if v.latency_ms is not None]
    report: dict[str, Any] = {
        "rubric": rubric.name,
        "kind": rubric.kind.value,
        "judge": {"name": judge.name, "version": judge.version, "model": judge.model},
        "gold": gold.source,
        "split": split,
        "split_seed": locked,
        "test_views": views,
        "n": len(ok),
        "errors": len(done) - len(ok),
        "pending": len(scored) - len(done),
        "no_gold": gold.no_gold,
        "judge_constant": said[0] if said and len(set(said)) == 1 else None,
        "judge_kappa": figures["kappa"],
        "judge_kappa_ci": figures["kappa_ci"],
        "judge_kappa_ci_bootstrap": figures["kappa_ci_bootstrap"],
        "observed": figures["observed"],
        "confusion": {"rows": "human", "columns": "judge", **figures["confusion"]},
        "cost_usd": round(sum(costs), 6) if costs else None,
        "cost_unknown_calls": len(calls) - len(costs),
        "latency_ms_p50": round(float(np.median(latencies)), 1) if latencies else None,
        "prompt_tokens": sum(v.prompt_tokens or 0 for v in calls),
        "completion_tokens": sum(v.completion_tokens or 0 for v in calls),
    }
    if rubric.kind is RubricKind.binary:
        tpr, tnr = sj.rates(human, said)
        report.update(positive_class="pass", tpr=_round(tpr), tnr=_round(tnr))
        report["corrected_pass_rate"] = corrected_pass_rate(
            human, said, gold, answers, tpr, tnr, resamples=resamples, seed=seed
        )
    else:
        report.update(position_figures([answers[c] for c in done]))
        report["without_ties"] = figures["without_ties"]
    report.update(human_figures(store, rubric, gold, resamples=resamples, seed=seed))
    report["disagreements"] = [
        {
            "case_id": c,
            "human": gold.values[c],
            "judge": answers[c].value,
            "critique": answers[c].critique,
            "note": gold.notes.get(c, ""),
        }
        for c in ok
        if gold.values[c] != answers[c].value
    ]
    report["error_cases"] = [
        {"case_id": c, "error": answers[c].error, "raw": answers[c].calls[0].raw}
        for c in done
        if answers[c].value is None
    ]
    report["case_ids"] = ok
    report["reading"] = reading(report)
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def position_figures(answers: list[Outcome]) -> dict[str, Any]:
    """Pairwise: how often both orders agree, and how often the first-shown reply won."""
    both = [a for a in answers if a.consistent is not None]
    shown = [
        ({"A": "B", "B": "A"}.get(str(v.value), v.value) if v.swapped else v.value)
        for a in answers
        for v in a.calls
        if v.value is not None
    ]
    decided = [s for s in shown if s != "tie"]
    return {
        "position_consistency": _round(sum(bool(a.consistent) for a in both) / len(both))
        if both
        else None,
        "position_consistency_n": len(both),
        "first_slot_win_rate": _round(decided.count("A") / len(decided)) if decided else None,
        "first_slot_n": len(decided),
    }


def human_figures(
    store: Store, rubric: Rubric, gold: Gold, *, resamples: int, seed: int
) -> dict[str, Any]:
    """How well the humans agree with each other: Cohen's κ for two raters, Fleiss' κ for more."""
    if len(gold.raters) < 2:
        return {"human_kappa": None, "human_kappa_ci": None, "human_raters": gold.raters}
    report = agreement_report(
        store, rubric.name, raters=gold.raters, resamples=resamples, seed=seed
    )
    if len(gold.raters) == 2:
        pair = report["pairs"][0]
        return {
            "human_kappa": pair["kappa"],
            "human_kappa_ci": pair["kappa_ci"],
            "human_kappa_method": "cohen",
            "human_n": pair["n"],
            "human_raters": gold.raters,
        }
    fleiss = report["fleiss_kappa"]
    ci = fleiss["ci"]
    return {
        "human_kappa": fleiss["value"],
        "human_kappa_ci": None if ci["low"] is None else [ci["low"], ci["high"]],
        "human_kappa_method": "fleiss (bootstrap CI)",
        "human_n": fleiss["n"],
        "human_raters": gold.raters,
    }


def corrected_pass_rate(
    human: list[str],
    said: list[str],
    gold: Gold,
    answers: dict[str, Outcome],
    tpr: float | None,
    tnr: float | None,
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any] | None:
    """Rogan–Gladen pass rate of the cases no human labelled, from the judge's answers on them."""
    # Unlabelled means no human looked at it: cases the humans split on are not a random draw.
    unlabelled = [
        a.value == "pass" for c, a in answers.items() if c not in gold.labelled and a.value
    ]
    if not unlabelled or tpr is None or tnr is None:
        return None
    h, j = np.asarray(human), np.asarray(said)
    observed = float(np.mean(unlabelled))
    ci = sj.rogan_gladen_bootstrap(
        j[h == "pass"] == "pass",
        j[h == "fail"] == "pass",
        unlabelled,
        resamples=resamples,
        seed=seed,
    )
    youden = tpr + tnr - 1
    result: dict[str, Any] = {
        "n_unlabelled": len(unlabelled),
        "observed": _round(observed),
        "corrected": _round(sj.rogan_gladen(observed, tpr, tnr)),
        "ci": None if ci.low is None or ci.high is None else [round(ci.low, 4), round(ci.high, 4)],
        "youden": _round(youden),
    }
    if youden < WEAK_YOUDEN:
        result["warning"] = (
            f"TPR + TNR − 1 is {youden:.2f}: the judge separates pass from fail too weakly for "
            "the correction to be trusted"
        )
    return result


def reading(report: dict[str, Any]) -> str:
    """What the judge's figures mean, in a sentence."""
    n, kappa = report["n"], report["judge_kappa"]
    if n < 2:
        return (
            f"only {n} case(s) with both a gold label and a verdict in the {report['split']} split"
        )
    if kappa is None:
        return "κ is undefined: judge and humans each gave a single value throughout"
    constant = report.get("judge_constant")
    if constant is not None:  # κ is 0 by construction and its interval has no width
        return (
            f"{constant_words(constant, n)}: it tells no case from another, so κ is 0 "
            "whatever the humans said"
        )
    low, high = report["judge_kappa_ci"] or (kappa, kappa)
    text = f"judge κ {kappa:.2f} [{low:.2f}, {high:.2f}] against the humans: {st.strength(kappa)}"
    if report.get("tpr") is not None and report.get("tnr") is not None:
        text += f"; it passes {report['tpr']:.0%} of human passes and fails {report['tnr']:.0%} of human fails"
    if report["errors"]:
        text += f"; {report['errors']} error verdict(s) left out"
    return text


def constant_words(value: str, n: int) -> str:
    """What a judge that gave one answer throughout did, in words.

    >>> constant_words("fail", 27)
    'the judge answered fail on all 27 cases'
    """
    return f"the judge answered {value} on all {n} cases"


def digest(lines: list[str]) -> str:
    """`sha256` of sorted lines: the fingerprint of a case set or a label set."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
