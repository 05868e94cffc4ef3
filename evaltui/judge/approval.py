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
from evaltui.judge.calibration import (
    ReportSplit,
    calibration_report,
    case_split,
    constant_words,
    digest,
    gold_labels,
    outcomes,
)
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
    """The approved rubric file for this judge, and the report its figures come from.

    An approval without a single test-split verdict is refused before the
    test split is read, so every look counted as `approve` is an approval.
    """
    gold = gold_labels(store, rubric, gold_rater)
    _, which = case_split(store, rubric, seed)
    answers = outcomes(store, judge, rubric)
    scored = [c for c in gold.values if which(c) == APPROVAL_SPLIT and c not in judge.few_shot]
    if not any(c in answers and answers[c].value is not None for c in scored):
        waiting = sum(c not in answers for c in scored)
        raise InvalidInput(
            f"judge {judge.name!r} has no verdicts on the test split of {rubric.name!r} "
            f"({waiting} labelled case(s) waiting): run it first"
        )
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
    scored = report["case_ids"]  # every one has gold: they are what the figures were read on
    calibration = CalibrationSection(
        judge_version=judge.version,
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
    constant = report.get("judge_constant")
    why = f": {constant_words(constant, report['n'])}" if constant is not None else ""
    checks.append(
        Check(
            kappa is not None and kappa >= thresholds.judge_kappa,
            f"judge κ {_num(kappa)} on {report['n']} cases (needs ≥ {thresholds.judge_kappa})"
            + why,
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


THRESHOLD_FLOORS = {"human_kappa_lower": 0.4, "judge_kappa": 0.4, "tpr": 0.5, "tnr": 0.5}
"""The least each gate threshold should ask: κ 0.4 is where moderate agreement
begins (κ 0 is chance), and a TPR or TNR of 0.5 is a coin toss."""


def threshold_warnings(thresholds: ThresholdsSection) -> list[str]:
    """Each threshold of the file below its floor; the gate still holds the file's value."""
    warnings = []
    for name, floor in THRESHOLD_FLOORS.items():
        value = getattr(thresholds, name)
        if value is not None and not value >= floor:  # NaN is below every floor too
            warnings.append(
                f"thresholds.{name} = {value} is below the floor {floor}; "
                "the gate holds the file's value"
            )
    return warnings


def judge_warnings(
    judge: Judge, calibration: CalibrationSection | None, project_approved: str | None
) -> list[str]:
    """Where the file's [judge] is not the approved one: by its [calibration], or in the project."""
    version = judge.version[:19]
    warnings = []
    if calibration is None:
        warnings.append(f"the [judge] {version} has no [calibration]: nothing says it was approved")
    elif calibration.judge_version is not None and calibration.judge_version != judge.version:
        warnings.append(
            f"the [judge] {version} is not the judge the [calibration] was approved for "
            f"({calibration.judge_version[:19]})"
        )
    if project_approved is not None and project_approved != judge.version:
        warnings.append(
            f"the [judge] {version} is not the judge approved in this project "
            f"({project_approved[:19]})"
        )
    return warnings


def gate_notes(report: dict[str, Any], approved: CalibrationSection | None) -> list[str]:
    """Where the cases read now differ from the ones approved (informational, not checks)."""
    if approved is None:
        return []
    notes = []
    if approved.judge_version is None:
        notes.append("the [calibration] does not name the judge it was read for (approve again)")
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
