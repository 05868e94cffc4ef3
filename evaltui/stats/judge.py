"""Judge calibration figures, as small pure functions on arrays.

A judge is read against human gold labels. For a binary rubric `pass` is the
positive class: TPR is the share of human passes the judge passed, TNR the
share of human fails it failed. Every function returns None where a figure is
undefined, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binomtest

from evaltui.stats.agreement import BootstrapCI, _kappa_rows, _percentile

Codes = NDArray[np.int64]


def rates(human: Sequence[str], judge: Sequence[str]) -> tuple[float | None, float | None]:
    """(TPR, TNR) with `pass` positive: P(judge pass | human pass), P(judge fail | human fail).

    >>> rates(["pass", "pass", "fail", "fail"], ["pass", "fail", "fail", "fail"])
    (0.5, 1.0)
    """
    h, j = np.asarray(human), np.asarray(judge)
    positives, negatives = h == "pass", h == "fail"
    tpr = float(np.mean(j[positives] == "pass")) if positives.any() else None
    tnr = float(np.mean(j[negatives] == "fail")) if negatives.any() else None
    return tpr, tnr


def rogan_gladen(observed: float, tpr: float, tnr: float) -> float | None:
    """The true pass rate behind a judge's observed one: (p + TNR − 1) / (TPR + TNR − 1).

    Clipped to [0, 1]; None when TPR + TNR − 1 is 0 (a judge no better than a coin).

    >>> rogan_gladen(0.5, 0.9, 0.8)
    0.42857142857142855
    """
    youden = tpr + tnr - 1
    if abs(youden) < 1e-12:
        return None
    return float(np.clip((observed + tnr - 1) / youden, 0.0, 1.0))


def rogan_gladen_bootstrap(
    judge_on_positives: Sequence[bool],
    judge_on_negatives: Sequence[bool],
    judge_on_unlabelled: Sequence[bool],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapCI:
    """Percentile interval of the corrected pass rate.

    Each replicate resamples, with replacement and each within its own group,
    the judge's answers on human passes (giving TPR), on human fails (TNR) and
    on the unlabelled cases (the observed pass rate p). The arguments are
    whether the judge said pass on each case of the group.

    >>> ci = rogan_gladen_bootstrap([True] * 45 + [False] * 5, [False] * 40 + [True] * 10,
    ...                             [True] * 300 + [False] * 200, seed=1)
    >>> round(ci.low, 2), round(ci.high, 2)
    (0.45, 0.68)
    """
    pos = np.asarray(judge_on_positives, dtype=np.float64)
    neg = np.asarray(judge_on_negatives, dtype=np.float64)
    unl = np.asarray(judge_on_unlabelled, dtype=np.float64)
    if not (pos.size and neg.size and unl.size):
        return BootstrapCI(None, None, resamples, resamples, seed)
    rng = np.random.default_rng(seed)
    tpr = rng.binomial(pos.size, pos.mean(), resamples) / pos.size
    tnr = 1 - rng.binomial(neg.size, neg.mean(), resamples) / neg.size
    p = rng.binomial(unl.size, unl.mean(), resamples) / unl.size
    youden = tpr + tnr - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.clip((p + tnr - 1) / youden, 0.0, 1.0)
    theta[np.abs(youden) < 1e-12] = np.nan
    return _percentile(theta, resamples, seed, level)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    `a_only`: cases judge A got right and judge B wrong; `b_only` the reverse.
    Under "the two judges are equally accurate" each discordant case is a fair
    coin, so p = the two-sided binomial test of a_only in a_only + b_only.

    >>> round(mcnemar_exact(12, 3), 4)
    0.0352
    >>> mcnemar_exact(0, 0)
    1.0
    """
    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def encode(values: Sequence[str], categories: Sequence[str]) -> Codes:
    """Label values as integer codes in `categories` order."""
    index = {c: i for i, c in enumerate(categories)}
    return np.array([index[v] for v in values], dtype=np.int64)


def _tables(gold: Codes, pred: Codes, k: int, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """Confusion tables (B, k, k) of gold vs pred over each row of resampled indices."""
    cells = gold[rows] * k + pred[rows]
    offsets = np.arange(rows.shape[0])[:, None] * k * k
    counts = np.bincount((cells + offsets).ravel(), minlength=rows.shape[0] * k * k)
    return counts.reshape(rows.shape[0], k, k).astype(np.float64)


def _rates_rows(tables: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """TPR and TNR of each 2×2 table in a stack (index 0 = pass); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tables[:, 0, 0] / tables[:, 0].sum(1)
        tnr = tables[:, 1, 1] / tables[:, 1].sum(1)
    return tpr, tnr


def paired_bootstrap(
    gold: Codes,
    pred_a: Codes,
    pred_b: Codes,
    k: int,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, BootstrapCI]:
    """Intervals for judge B minus judge A on the same cases: Δκ, and ΔTPR/ΔTNR when k = 2.

    Cases are resampled together, so both judges are always scored on the
    same resampled set: the pairing removes the case-to-case variation both
    share.
    """
    n = gold.size
    if n == 0:
        empty = BootstrapCI(None, None, resamples, resamples, seed)
        return {"kappa": empty, **({"tpr": empty, "tnr": empty} if k == 2 else {})}
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ta, tb = _tables(gold, pred_a, k, rows), _tables(gold, pred_b, k, rows)
    out = {"kappa": _percentile(_kappa_rows(tb) - _kappa_rows(ta), resamples, seed, level)}
    if k == 2:
        (tpr_a, tnr_a), (tpr_b, tnr_b) = _rates_rows(ta), _rates_rows(tb)
        out["tpr"] = _percentile(tpr_b - tpr_a, resamples, seed, level)
        out["tnr"] = _percentile(tnr_b - tnr_a, resamples, seed, level)
    return out
