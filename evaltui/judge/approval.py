"""Approving a judge (the rubric TOML with its evidence) and gating on it.

Approval reads the judge on the rubric's test split, so the figures written
down are ones the prompt was not tuned on; each approval counts as a look at
the test split. The gate reads the same split again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evaltui.errors import InvalidInput
from evaltui.judge.calibration import ReportSplit, calibration_report, digest, gold_labels
from evaltui.judge.runner import Call, plan
from evaltui.models import Case, Judge, Rubric, RubricStatus
from evaltui.rubric_toml import CalibrationSection, RubricFile, ThresholdsSection
from evaltui.store import Store
from evaltui.store.verdicts import split_of, split_seed
from evaltui.text import field

APPROVAL_SPLIT: ReportSplit = "test"


def approve(
    store: Store,
    rubric: Rubric,
    judge: Judge,
    *,
    approver: str,
    gold_rater: str | None = None,
    seed: int = 0,
    thresholds: ThresholdsSection | None = None,
    resamples: int = 2000,
) -> tuple[RubricFile, dict[str, Any]]:
    """The approved rubric file for this judge, and the report its figures come from."""
    report = calibration_report(
        store,
        rubric,
        judge,
        gold_rater=gold_rater,
        split=APPROVAL_SPLIT,
        seed=seed,
        resamples=resamples,
        purpose="approve",
    )
    if report["n"] == 0:
        raise InvalidInput(
            f"judge {judge.name!r} has no verdicts on the test split of {rubric.name!r} "
            f"({report['pending']} labelled case(s) waiting): run it first"
        )
    gold = gold_labels(store, rubric, gold_rater)
    scored = report["case_ids"]  # every one has gold: they are what the figures were read on
    calibration = CalibrationSection(
        n=report["n"],
        human_raters=report["human_raters"],
        human_kappa=report["human_kappa"],
        human_kappa_ci=report["human_kappa_ci"],
        judge_kappa=report["judge_kappa"],
        judge_kappa_ci=report["judge_kappa_ci"],
        tpr=report.get("tpr"),
        tnr=report.get("tnr"),
        split_seed=report["split_seed"],
        cases_sha256=digest(scored),
        labels_sha256=digest([f"{c}\t{gold.values[c]}" for c in scored]),
        approved_by=approver,
        approved_at=datetime.now(UTC).replace(microsecond=0),
    )
    approved = rubric.model_copy(update={"status": RubricStatus.approved})
    store.set_rubric_status(rubric.name, rubric.version, RubricStatus.approved)
    base = RubricFile.from_models(approved, judge)
    file = base.model_copy(
        update={"calibration": calibration, "thresholds": thresholds or ThresholdsSection()}
    )
    return file, report


@dataclass(frozen=True)
class Check:
    """One gate condition and whether it held."""

    ok: bool
    text: str


def gate_checks(report: dict[str, Any], thresholds: ThresholdsSection) -> list[Check]:
    """Every condition of the gate, read off a calibration report."""
    checks: list[Check] = []
    if report["n"] == 0:
        return [Check(False, "no verdicts on the labelled test cases: nothing to gate on")]
    ci = report.get("human_kappa_ci")
    if ci is None:
        checks.append(
            Check(
                False,
                "human κ not measured: the gate needs labels from two raters "
                f"(raters: {', '.join(field(r) for r in report['human_raters']) or 'none'})",
            )
        )
    else:
        checks.append(
            Check(
                ci[0] >= thresholds.human_kappa_lower,
                f"human κ lower 95% bound {ci[0]:.3f} (needs ≥ {thresholds.human_kappa_lower})",
            )
        )
    kappa = report["judge_kappa"]
    checks.append(
        Check(
            kappa is not None and kappa >= thresholds.judge_kappa,
            f"judge κ {_num(kappa)} on {report['n']} cases (needs ≥ {thresholds.judge_kappa})",
        )
    )
    for key in ("tpr", "tnr"):
        wanted = getattr(thresholds, key)
        if wanted is not None:
            value = report.get(key)
            checks.append(
                Check(
                    value is not None and value >= wanted,
                    f"{key.upper()} {_num(value)} (needs ≥ {wanted})",
                )
            )
    return checks


def gate_notes(report: dict[str, Any], approved: CalibrationSection | None) -> list[str]:
    """Where the cases read now differ from the ones approved (informational, not checks)."""
    if approved is None:
        return []
    notes = []
    if approved.split_seed is not None and approved.split_seed != report["split_seed"]:
        notes.append(
            f"this project's split seed is {report['split_seed']}, the approval used "
            f"{approved.split_seed}: the test split holds other cases"
        )
    if approved.cases_sha256 and approved.cases_sha256 != digest(report["case_ids"]):
        notes.append(
            f"the {report['n']} test cases read now are not the {approved.n} approved ones "
            "(cases_sha256 differs)"
        )
    return notes


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def labelled_calls(
    store: Store,
    rubric: Rubric,
    judge: Judge,
    *,
    gold_rater: str | None,
    retry_errors: bool = False,
) -> tuple[list[Call], int]:
    """The calls still needed for the judge to answer every human-labelled case, and the case count."""
    gold = gold_labels(store, rubric, gold_rater)
    cases = store.cases_by_id(sorted(gold.values))
    return plan(store, judge, rubric, cases, retry_errors=retry_errors), len(cases)


def few_shot_examples(
    store: Store, rubric: Rubric, judge: Judge, *, gold_rater: str | None, seed: int
) -> list[tuple[Case, str]]:
    """The judge's few-shot cases with their gold labels; each must be a labelled train case."""
    if not judge.few_shot:
        return []
    gold = gold_labels(store, rubric, gold_rater)
    locked = split_seed(store, rubric.name, seed)
    examples = []
    for case_id in judge.few_shot:
        where = split_of(case_id, locked)
        if where != "train":
            train = [c for c in sorted(gold.values) if split_of(c, locked) == "train"][:8]
            raise InvalidInput(
                f"few-shot case {case_id!r} is in the {where} split; few-shot examples must come "
                f"from train (labelled train cases: {', '.join(train) or 'none'})"
            )
        if case_id not in gold.values:
            raise InvalidInput(f"few-shot case {case_id!r} has no human gold label")
        examples.append((store.get_case(case_id), gold.values[case_id]))
    return examples
