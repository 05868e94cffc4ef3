"""The judge's reports as terminal text: figures first, each with what it means.

Stored names, models, critiques and notes are shown through `field`: one line
each, every control character written out.
"""

from __future__ import annotations

from typing import Any

from evaltui.text import field


def num(value: float | None, digits: int = 3) -> str:
    """A figure to `digits` places, or a dash where it is undefined."""
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(pair: list[float] | None) -> str:
    return "" if not pair else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def render_report(report: dict[str, Any]) -> str:
    """`evaltui judge report` without --json."""
    j = report["judge"]
    lines = [
        f"judge {field(j['name'])} {j['version'][:19]} ({field(j['model'])}) "
        f"on rubric {report['rubric']}",
        f"gold: {field(report['gold'])}; split {report['split']} (seed {report['split_seed']}); "
        f"test set viewed {report['test_views']} time(s)",
        f"n {report['n']}   errors {report['errors']}   not yet run {report['pending']}"
        + (f"   humans split, no gold {report['no_gold']}" if report["no_gold"] else ""),
        "",
        f"judge κ       {num(report['judge_kappa'])}{_ci(report['judge_kappa_ci'])}",
        f"agreement     {_pct(report['observed'])}",
    ]
    if report["kind"] == "binary":
        lines += [
            f"TPR           {_pct(report['tpr'])}   (positive class: pass; human passes the judge passed)",
            f"TNR           {_pct(report['tnr'])}   (human fails the judge failed)",
        ]
    else:
        lines += [
            f"position consistency  {_pct(report['position_consistency'])} of "
            f"{report['position_consistency_n']} cases gave the same answer in both orders",
            f"first-slot win rate   {_pct(report['first_slot_win_rate'])} of "
            f"{report['first_slot_n']} decided calls picked the reply shown first (0.5 is unbiased)",
        ]
    if report.get("human_kappa") is not None:
        lines.append(
            f"human κ       {num(report['human_kappa'])}{_ci(report['human_kappa_ci'])} "
            f"({', '.join(map(field, report['human_raters']))})"
        )
    cost = report["cost_usd"]
    lines.append(
        f"cost          {'unknown' if cost is None else f'${cost:.4f}'}"
        + (
            f" ({report['cost_unknown_calls']} call(s) unpriced)"
            if report["cost_unknown_calls"]
            else ""
        )
        + f"   latency p50 {num(report['latency_ms_p50'], 0)} ms"
    )
    confusion = report["confusion"]
    labels = confusion["labels"]
    lines += [
        "",
        "confusion (rows human, columns judge)",
        "        " + "".join(f"{c:>7}" for c in labels),
    ]
    for label, row in zip(labels, confusion["matrix"], strict=True):
        lines.append(f"{label:>7} " + "".join(f"{v:>7}" for v in row))
    corrected = report.get("corrected_pass_rate")
    if corrected:
        lines += [
            "",
            f"corrected pass rate on {corrected['n_unlabelled']} unlabelled case(s): "
            f"{_pct(corrected['corrected'])}"
            + (
                f" [{_pct(corrected['ci'][0])}, {_pct(corrected['ci'][1])}]"
                if corrected["ci"]
                else ""
            )
            + f" (judge said pass on {_pct(corrected['observed'])})",
        ]
        if corrected.get("warning"):
            lines.append(f"warning: {corrected['warning']}")
    lines += ["", report["reading"]]
    if report["disagreements"]:
        lines += ["", f"{len(report['disagreements'])} disagreement(s):"]
        for d in report["disagreements"][:20]:
            lines.append(f"  {field(d['case_id'])}: human {d['human']}, judge {d['judge']}")
            if d["critique"]:
                lines.append(f"    judge: {short(d['critique'])}")
            if d["note"]:
                lines.append(f"    human: {short(d['note'])}")
        if len(report["disagreements"]) > 20:
            lines.append(f"  … {len(report['disagreements']) - 20} more (--json lists all)")
    return "\n".join(lines)


def short(text: str, width: int = 100) -> str:
    """Text on one line, cut to `width` with an ellipsis, control characters written out."""
    flat = field(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_history(report: dict[str, Any]) -> str:
    """`evaltui judge history` without --json."""
    lines = [
        f"judge versions of {report['rubric']} on the {report['common_cases']} {report['split']} "
        "case(s) every run version answered",
        f"{'version':<21}{'name':<12}{'n':>5}{'errors':>8}{'κ':>8}{'TPR':>8}{'TNR':>8}  model",
    ]
    for v in report["versions"]:
        if not v["run"]:
            lines.append(
                f"{v['version'][:19]:<21}{field(v['name']):<12}{'not run':>13}  {field(v['model'])}"
            )
            continue
        lines.append(
            f"{v['version'][:19]:<21}{field(v['name']):<12}{v['n']:>5}{v['errors']:>8}"
            f"{num(v['judge_kappa']):>8}{num(v.get('tpr')):>8}{num(v.get('tnr')):>8}  "
            f"{field(v['model'])}"
        )
    return "\n".join(lines)


def render_comparison(report: dict[str, Any]) -> str:
    """`evaltui judge compare` without --json."""
    m = report["mcnemar"]
    lines = [
        f"{report['after'][:19]} minus {report['before'][:19]} on {report['n']} shared "
        f"{report['split']} case(s)",
    ]
    for key, d in report["deltas"].items():
        name = "κ" if key == "kappa" else key.upper()
        lines.append(
            f"  Δ{name:<4} {num(d['delta']):>7}{_ci(d['ci'])}   ({num(d['before'])} → {num(d['after'])})"
        )
    verdict = "a real difference" if m["p_value"] < 0.05 else "no clear difference"
    lines.append(
        f"  McNemar: {m['after_only_right']} case(s) only the new version got right, "
        f"{m['before_only_right']} only the old one; p = {m['p_value']:.4f} ({verdict})"
    )
    return "\n".join(lines)
