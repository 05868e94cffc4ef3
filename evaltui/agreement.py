"""The agreement report of a rubric: every pair of raters, 3+ rater figures, slices, position bias.

Reads current human labels from the store and hands arrays to `evaltui.stats`;
the result is a plain dict (the `--json` output) that `render_text` prints
with a reading in words.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import numpy as np

from evaltui.errors import InvalidInput
from evaltui.models import Label, RaterKind, Rubric, RubricKind
from evaltui.stats import agreement as st
from evaltui.store import Store
from evaltui.text import field

TOO_VAGUE = 0.6
"""Below this κ, practitioners read the rubric as too vague to label consistently."""


def categories(rubric: Rubric) -> list[str]:
    """The rubric's label values in display (and, for pairwise, ordinal) order."""
    return ["pass", "fail"] if rubric.kind is RubricKind.binary else ["A", "tie", "B"]


def _ci(pair: tuple[float, float] | None) -> list[float] | None:
    return [round(pair[0], 4), round(pair[1], 4)] if pair else None


def _boot(ci: st.BootstrapCI) -> dict[str, Any]:
    return {
        "low": None if ci.low is None else round(ci.low, 4),
        "high": None if ci.high is None else round(ci.high, 4),
        "resamples": ci.resamples,
        "degenerate": ci.degenerate,
        "seed": ci.seed,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def pair_figures(
    a: list[str], b: list[str], cats: list[str], *, pairwise: bool, resamples: int, seed: int
) -> dict[str, Any]:
    """Every two-rater figure for aligned label lists `a` and `b`."""
    table = st.confusion(a, b, cats)
    kappa = st.cohen_kappa(table)
    figures: dict[str, Any] = {
        "n": len(a),
        "observed": _round(st.observed_agreement(table)),
        "kappa": _round(kappa),
        "kappa_ci": _ci(st.kappa_analytic_ci(table)),
        "kappa_ci_bootstrap": _boot(st.kappa_bootstrap_ci(table, resamples=resamples, seed=seed))
        if len(a)
        else None,
        "pabak": _round(st.pabak(table)),
        "ac1": _round(st.gwet_ac1(table)),
        "confusion": {"labels": cats, "matrix": table.astype(int).tolist()},
        "disagreements": int(table.sum() - np.trace(table)),
    }
    if pairwise:
        figures["weighted_kappa_linear"] = _round(st.weighted_kappa(table, "linear"))
        no_ties = st.without_ties(table, cats)
        figures["without_ties"] = {
            "n": int(no_ties.sum()),
            "observed": _round(st.observed_agreement(no_ties)),
            "kappa": _round(st.cohen_kappa(no_ties)),
        }
    else:
        figures["prevalence_index"] = _round(st.prevalence_index(table))
        figures["bias_index"] = _round(st.bias_index(table))
    figures["reading"] = reading(figures, a, b)
    return figures


def reading(figures: dict[str, Any], a: list[str], b: list[str]) -> str:
    """What the figures mean, in one sentence a product person can act on."""
    n = figures["n"]
    if n < 2:
        return f"only {n} case(s) labelled by both raters: label more before reading agreement"
    kappa = figures["kappa"]
    if kappa is None:
        used = sorted(set(a) | set(b))
        return (
            f"κ is undefined: both raters gave every case {' / '.join(repr(u) for u in used)}, so "
            f"agreement by chance is already 100% (observed {figures['observed']:.0%}); "
            "label cases of the other kind before judging this rubric"
        )
    low, high = figures["kappa_ci"] or (kappa, kappa)
    text = f"κ {kappa:.2f} [{low:.2f}, {high:.2f}]: {st.strength(kappa)}"
    disagreements = figures["disagreements"]
    if low < TOO_VAGUE:
        text += f"; below {TOO_VAGUE} the rubric is probably too vague"
    return text + f" — see the {disagreements} disagreement{'s' if disagreements != 1 else ''}"


def _labels_by_rater(
    store: Store, rubric: Rubric, raters: list[str] | None
) -> dict[str, dict[str, Label]]:
    humans = {r.name for r in store.raters() if r.kind is RaterKind.human}
    by_rater: dict[str, dict[str, Label]] = defaultdict(dict)
    for label in store.current_labels(rubric.name):
        if label.value is not None and label.rater in humans:
            by_rater[label.rater][label.case_id] = label
    if raters is None:
        return dict(sorted(by_rater.items()))
    unknown = [r for r in raters if r not in by_rater]
    if unknown:
        known = ", ".join(sorted(by_rater)) or "none"
        raise InvalidInput(
            f"rater {unknown[0]!r} has no labels for rubric {rubric.name!r} (raters: {known})"
        )
    return {r: by_rater[r] for r in raters}


def _slice_values(store: Store, case_ids: list[str], field: str) -> dict[str, list[str]]:
    """Each case's slice value(s) for `field`: `split`, `tag` (one slice per tag) or metadata."""
    rows = (
        store.cursor()
        .execute(
            "SELECT id, split, tags, metadata FROM cases WHERE id IN (SELECT unnest(?::VARCHAR[]))",
            [case_ids],
        )
        .fetchall()
    )
    values: dict[str, list[str]] = {}
    for case_id, split, tags, metadata in rows:
        if field == "split":
            values[case_id] = [split or "(none)"]
        elif field in ("tag", "tags"):
            values[case_id] = list(tags) or ["(none)"]
        else:
            value = json.loads(metadata or "{}").get(field)
            values[case_id] = ["(none)" if value is None else str(value)]
    return values


def position_bias(labels: dict[str, dict[str, Label]]) -> list[dict[str, Any]]:
    """Per rater: how often the pick (ties aside) was the output shown on the left, with a binomial test."""
    from scipy.stats import binomtest

    result = []
    for rater, by_case in labels.items():
        picks = [
            (lb.value == "A") != bool(lb.shown_swapped)
            for lb in by_case.values()
            if lb.shown_swapped is not None and lb.value in ("A", "B")
        ]
        if not picks:
            continue
        left = sum(picks)
        test = binomtest(left, len(picks), 0.5)
        result.append(
            {
                "rater": rater,
                "n": len(picks),
                "left": left,
                "left_share": round(left / len(picks), 4),
                "p_value": round(float(test.pvalue), 6),
            }
        )
    return result


def agreement_report(
    store: Store,
    rubric_name: str,
    *,
    raters: list[str] | None = None,
    by: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The full agreement report of a rubric's human labels (the `--json` object)."""
    rubric = store.get_rubric(rubric_name)
    cats = categories(rubric)
    pairwise = rubric.kind is RubricKind.pairwise
    labels = _labels_by_rater(store, rubric, raters)
    names = list(labels)
    if len(names) < 2:
        raise InvalidInput(
            f"rubric {rubric.name!r} needs labels from two raters for agreement "
            f"(raters with labels: {', '.join(names) or 'none'})"
        )
    every_case: set[str] = set().union(*(set(by_case) for by_case in labels.values()))
    multi = [cid for cid in every_case if sum(cid in labels[r] for r in names) >= 2]
    report: dict[str, Any] = {
        "rubric": rubric.name,
        "rubric_version": max(
            lb.rubric_version for by_case in labels.values() for lb in by_case.values()
        ),
        "kind": rubric.kind.value,
        "raters": names,
        "n_cases": len(multi),
        "pairs": [],
    }
    for first, second in itertools.combinations(names, 2):
        common = sorted(set(labels[first]) & set(labels[second]))
        a = [str(labels[first][c].value) for c in common]
        b = [str(labels[second][c].value) for c in common]
        figures = pair_figures(a, b, cats, pairwise=pairwise, resamples=resamples, seed=seed)
        report["pairs"].append({"raters": [first, second], **figures})
    if len(names) >= 3:
        report.update(_many_raters(labels, names, cats, resamples=resamples, seed=seed))
    if by is not None:
        report["by"] = by
        report["slices"] = _slices(store, labels, names, cats, by)
    if pairwise:
        report["position_bias"] = position_bias(labels)
    return report


def _many_raters(
    labels: dict[str, dict[str, Label]],
    names: list[str],
    cats: list[str],
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    index = {c: i for i, c in enumerate(cats)}
    everyone = sorted(set.intersection(*(set(labels[r]) for r in names)))
    counts = np.zeros((len(everyone), len(cats)))
    for row, case_id in enumerate(everyone):
        for rater in names:
            counts[row, index[str(labels[rater][case_id].value)]] += 1
    any_case = sorted(set().union(*(set(labels[r]) for r in names)))
    units = np.zeros((len(any_case), len(cats)))
    for row, case_id in enumerate(any_case):
        for rater in names:
            if case_id in labels[rater]:
                units[row, index[str(labels[rater][case_id].value)]] += 1
    fleiss_ci = st.fleiss_kappa_bootstrap_ci(counts, resamples=resamples, seed=seed)
    alpha_ci = st.krippendorff_alpha_bootstrap_ci(units, resamples=resamples, seed=seed)
    return {
        "fleiss_kappa": {
            "value": _round(st.fleiss_kappa(counts)),
            "n": len(everyone),
            "ci": _boot(fleiss_ci),
        },
        "krippendorff_alpha": {
            "value": _round(st.krippendorff_alpha(units)),
            "n": int((units.sum(1) >= 2).sum()),
            "ci": _boot(alpha_ci),
        },
    }


def _slices(
    store: Store,
    labels: dict[str, dict[str, Label]],
    names: list[str],
    cats: list[str],
    by: str,
) -> list[dict[str, Any]]:
    every_case = sorted(set().union(*(set(labels[r]) for r in names)))
    values = _slice_values(store, every_case, by)
    slices: dict[str, list[str]] = defaultdict(list)
    for case_id, slice_values in values.items():
        for value in slice_values:
            slices[value].append(case_id)
    result = []
    for value, case_ids in sorted(slices.items()):
        members = set(case_ids)
        pairs = []
        for first, second in itertools.combinations(names, 2):
            common = sorted(set(labels[first]) & set(labels[second]) & members)
            a = [str(labels[first][c].value) for c in common]
            b = [str(labels[second][c].value) for c in common]
            table = st.confusion(a, b, cats)
            pairs.append(
                {
                    "raters": [first, second],
                    "n": len(common),
                    "observed": _round(st.observed_agreement(table)),
                    "kappa": _round(st.cohen_kappa(table)),
                    "kappa_ci": _ci(st.kappa_analytic_ci(table)),
                }
            )
        result.append({"value": value, "n_cases": len(members), "pairs": pairs})
    return result


def _num(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def _interval(ci: list[float] | dict[str, Any] | None) -> str:
    if ci is None:
        return "-"
    low, high = (ci["low"], ci["high"]) if isinstance(ci, dict) else ci
    return "-" if low is None else f"[{low:.2f}, {high:.2f}]"


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal: figures, what they mean, and where to look next.

    Stored names and slice values are shown through `field`: one line each, every
    control character written out.
    """
    lines = [
        f"{report['rubric']} ({report['kind']}): {report['n_cases']} cases labelled by two or more "
        f"of {', '.join(map(field, report['raters']))}",
    ]
    for pair in report["pairs"]:
        first, second = map(field, pair["raters"])
        boot = pair["kappa_ci_bootstrap"]
        lines += [
            "",
            f"{first} vs {second}: n={pair['n']}",
            f"  observed agreement  {_num(pair['observed'])}",
            f"  Cohen's kappa       {_num(pair['kappa'])}  95% CI {_interval(pair['kappa_ci'])} analytic, "
            f"{_interval(boot)} bootstrap"
            + (
                f" ({boot['resamples']} resamples, seed {boot['seed']}"
                + (f", {boot['degenerate']} undefined" if boot["degenerate"] else "")
                + ")"
                if boot
                else ""
            ),
            f"  PABAK {_num(pair['pabak'])}   Gwet's AC1 {_num(pair['ac1'])}",
        ]
        if "prevalence_index" in pair:
            lines.append(
                f"  prevalence index {_num(pair['prevalence_index'])}   bias index {_num(pair['bias_index'])}"
            )
        if "without_ties" in pair:
            nt = pair["without_ties"]
            lines.append(
                f"  without ties: n={nt['n']}, agreement {_num(nt['observed'])}, kappa {_num(nt['kappa'])};"
                f" linear weighted kappa {_num(pair['weighted_kappa_linear'])}"
            )
        labels = pair["confusion"]["labels"]
        width = max(6, *(len(x) for x in labels)) + 2
        lines.append(f"  confusion (rows {first}, columns {second}):")
        lines.append("    " + " " * width + "".join(f"{x:>{width}}" for x in labels))
        for name, row in zip(labels, pair["confusion"]["matrix"], strict=True):
            lines.append("    " + f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row))
        lines.append(f"  reading: {pair['reading']}")
    for key, title in (
        ("fleiss_kappa", "Fleiss' kappa"),
        ("krippendorff_alpha", "Krippendorff's alpha"),
    ):
        if key in report:
            fig = report[key]
            lines.append(
                f"{title}: {_num(fig['value'])} 95% CI {_interval(fig['ci'])} (n={fig['n']})"
            )
    if report.get("slices"):
        lines += ["", f"by {field(report['by'])}:"]
        for piece in report["slices"]:
            for pair in piece["pairs"]:
                lines.append(
                    f"  {field(piece['value']):<20} {' vs '.join(map(field, pair['raters'])):<30} "
                    f"n={pair['n']:<5} "
                    f"kappa {_num(pair['kappa'])} {_interval(pair['kappa_ci'])}"
                )
    if "position_bias" in report:
        lines += ["", "position bias (share of picks for the left side, ties aside):"]
        if not report["position_bias"]:
            lines.append(
                "  none measured: only labels made in evaltui record which side was on the left"
            )
        for row in report["position_bias"]:
            verdict = "biased" if row["p_value"] < 0.05 else "no evidence of bias"
            lines.append(
                f"  {field(row['rater']):<20} {row['left']}/{row['n']} left ({row['left_share']:.0%}), "
                f"binomial p={row['p_value']:.3g}: {verdict}"
            )
    return "\n".join(lines)
