"""Benchmark: Cohen's κ with a 2,000-resample bootstrap CI on 100,000 paired labels.

Goal: at most 1 s. The baseline, measured in the same run, is a plain loop
that resamples the cases and calls `sklearn.metrics.cohen_kappa_score` on
each replicate.

    python bench/agreement.py                 # 100,000 labels, 2,000 resamples
    python bench/agreement.py --baseline 200  # time the sklearn loop on 200 resamples, scaled
    python bench/agreement.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from evaltui.stats import agreement as st

CATEGORIES = ["pass", "fail"]


def synthetic_raters(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Two raters who agree on about 85% of n cases with 70% passes."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.7
    a = np.where(rng.random(n) < 0.92, truth, ~truth)
    b = np.where(rng.random(n) < 0.92, truth, ~truth)
    return [CATEGORIES[0] if x else CATEGORIES[1] for x in a], [
        CATEGORIES[0] if x else CATEGORIES[1] for x in b
    ]


def evaltui_run(a: list[str], b: list[str], resamples: int) -> tuple[float, st.BootstrapCI]:
    """Seconds for the confusion table, κ, and the bootstrap interval, as `evaltui agreement` does."""
    start = time.perf_counter()
    table = st.confusion(a, b, CATEGORIES)
    st.cohen_kappa(table)
    ci = st.kappa_bootstrap_ci(table, resamples=resamples, seed=0)
    return time.perf_counter() - start, ci


def sklearn_loop(a: list[str], b: list[str], resamples: int) -> tuple[float, tuple[float, float]]:
    """Seconds for κ plus a loop resampling cases and calling cohen_kappa_score per replicate."""
    from sklearn.metrics import cohen_kappa_score

    start = time.perf_counter()
    x, y = np.array(a), np.array(b)
    cohen_kappa_score(x, y)
    rng = np.random.default_rng(0)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(x), len(x))
        values.append(cohen_kappa_score(x[pick], y[pick]))
    low, high = np.percentile(values, [2.5, 97.5])
    return time.perf_counter() - start, (float(low), float(high))


def main() -> None:
    """Run both, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--baseline", type=int, default=None, help="resamples for the sklearn loop (default: same)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    a, b = synthetic_raters(args.labels, seed=1)
    ours = [evaltui_run(a, b, args.resamples) for _ in range(args.repeat)]
    seconds = statistics.median(t for t, _ in ours)
    ci = ours[0][1]
    baseline_resamples = args.baseline or args.resamples
    base_seconds, base_ci = sklearn_loop(a, b, baseline_resamples)
    scaled = base_seconds * args.resamples / baseline_resamples
    figures = {
        "labels": args.labels,
        "resamples": args.resamples,
        "evaltui_seconds": round(seconds, 4),
        "evaltui_ci": [round(ci.low or 0, 4), round(ci.high or 0, 4)],
        "sklearn_loop_seconds": round(scaled, 2),
        "sklearn_loop_resamples_timed": baseline_resamples,
        "sklearn_loop_ci": [round(base_ci[0], 4), round(base_ci[1], 4)],
        "speedup": round(scaled / seconds, 1),
        "goal_seconds": 1.0,
        "pass": seconds <= 1.0,
    }
    if args.json:
        print(json.dumps(figures))
        return
    scaled_note = (
        "" if baseline_resamples == args.resamples else f" (timed on {baseline_resamples}, scaled)"
    )
    print(
        f"Cohen's kappa with a {args.resamples:,}-resample bootstrap on {args.labels:,} paired labels"
    )
    print(f"  evaltui (median of {args.repeat})   {seconds:8.3f} s   CI [{ci.low:.4f}, {ci.high:.4f}]"
          f"   goal <= 1 s: {'PASS' if seconds <= 1 else 'OVER'}")  # fmt: skip
    print(
        f"  sklearn loop                 {scaled:8.2f} s   CI [{base_ci[0]:.4f}, {base_ci[1]:.4f}]{scaled_note}"
    )
    print(f"  evaltui is {scaled / seconds:,.0f}x faster")


if __name__ == "__main__":
    main()
