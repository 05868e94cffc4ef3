"""Agreement between raters, as small pure functions on arrays.

Two raters' labels of the same cases become a k×k confusion table `t`
(rows: rater 1, columns: rater 2); proportions are `p = t / n`, with row
marginals `r = p.sum(1)` and column marginals `c = p.sum(0)`. Every function
returns None where the figure is undefined, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Table = NDArray[np.float64]

Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""

_EPS = 1e-12
"""How close to 1 chance agreement must be to count as 1: only float round-off, so
that p_e = 1 − 1/n stays defined however large n is."""


def _is_one(x: float | NDArray[np.float64]) -> Any:
    return np.abs(1.0 - np.asarray(x)) <= _EPS


def confusion(a: Sequence[str], b: Sequence[str], categories: Sequence[str]) -> Table:
    """The k×k table of how often rater 1 said row i while rater 2 said column j.

    >>> confusion(["pass", "pass", "fail"], ["pass", "fail", "fail"], ["pass", "fail"])
    array([[1., 1.],
           [0., 1.]])
    """
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    np.add.at(table, ([index[x] for x in a], [index[y] for y in b]), 1)
    return table


def observed_agreement(t: Table) -> float | None:
    """p_o = trace(t) / n, the share of cases where the raters agree.

    >>> observed_agreement(np.array([[40., 10.], [5., 45.]]))
    0.85
    """
    n = t.sum()
    return float(np.trace(t) / n) if n else None


def _chance(t: Table) -> float:
    p = t / t.sum()
    return float(p.sum(1) @ p.sum(0))


def cohen_kappa(t: Table) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e), with chance agreement p_e = Σ r_i c_i.

    Undefined (None) when p_e = 1: both raters used one and the same value.

    >>> round(cohen_kappa(np.array([[40., 10.], [5., 45.]])), 4)
    0.7
    >>> cohen_kappa(np.array([[9., 0.], [0., 0.]])) is None
    True
    """
    n = t.sum()
    if not n:
        return None
    pe = _chance(t)
    if _is_one(pe):
        return None
    return float((np.trace(t) / n - pe) / (1 - pe))


def kappa_analytic_ci(t: Table, z: float = Z95) -> tuple[float, float] | None:
    """κ ± z·SE, with the large-sample variance of Fleiss, Cohen & Everitt (1969),
    clipped to [−1, 1], the range κ can take.

    var(κ) = [Σ_i p_ii (1 − (r_i + c_i)(1 − κ))²
              + (1 − κ)² Σ_{i≠j} p_ij (c_i + r_j)²
              − (κ − p_e (1 − κ))²] / (n (1 − p_e)²)

    >>> [round(x, 3) for x in kappa_analytic_ci(np.array([[40., 10.], [5., 45.]]))]
    [0.561, 0.839]

    On few cases κ ± z·SE can pass 1 (here 1.18); no κ lies there:

    >>> [round(x, 3) for x in kappa_analytic_ci(np.array([[4., 0.], [1., 4.]]))]
    [0.385, 1.0]
    """
    kappa = cohen_kappa(t)
    if kappa is None:
        return None
    n = t.sum()
    p = t / n
    r, c = p.sum(1), p.sum(0)
    pe = float(r @ c)
    diagonal = np.diag(p) @ (1 - (r + c) * (1 - kappa)) ** 2
    off = p * (c[:, None] + r[None, :]) ** 2
    off_sum = off.sum() - np.trace(off)
    variance = (diagonal + (1 - kappa) ** 2 * off_sum - (kappa - pe * (1 - kappa)) ** 2) / (
        n * (1 - pe) ** 2
    )
    se = float(np.sqrt(max(variance, 0.0)))
    return max(kappa - z * se, -1.0), min(kappa + z * se, 1.0)


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval and how it was made."""

    low: float | None
    high: float | None
    resamples: int
    degenerate: int
    """Replicates where the figure was undefined (left out of the interval, and counted)."""
    seed: int


def _kappa_rows(tables: NDArray[np.float64]) -> NDArray[np.float64]:
    """κ of each k×k table in a (B, k, k) stack; NaN where undefined."""
    n = tables.sum(axis=(1, 2))
    p = tables / n[:, None, None]
    po = np.trace(p, axis1=1, axis2=2)
    pe = np.einsum("bi,bi->b", p.sum(2), p.sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (po - pe) / (1 - pe)
    kappa[_is_one(pe)] = np.nan
    return kappa


def _percentile(
    values: NDArray[np.float64], resamples: int, seed: int, level: float
) -> BootstrapCI:
    finite = values[np.isfinite(values)]
    degenerate = int(resamples - finite.size)
    if finite.size == 0:
        return BootstrapCI(None, None, resamples, degenerate, seed)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return BootstrapCI(float(low), float(high), resamples, degenerate, seed)


def kappa_bootstrap_ci(
    t: Table, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Percentile interval of κ over cases resampled with replacement.

    Resampling n cases is drawing the table from Multinomial(n, t / n), which
    is how it is done here: one draw per replicate, whatever n is.

    >>> ci = kappa_bootstrap_ci(np.array([[40., 10.], [5., 45.]]), seed=1)
    >>> round(ci.low, 2), round(ci.high, 2), ci.degenerate
    (0.54, 0.83, 0)
    """
    n = int(t.sum())
    if n == 0:
        return BootstrapCI(None, None, resamples, resamples, seed)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, (t / n).ravel(), size=resamples).reshape(resamples, *t.shape)
    return _percentile(_kappa_rows(draws.astype(np.float64)), resamples, seed, level)


def pabak(t: Table) -> float | None:
    """Prevalence- and bias-adjusted κ: (k·p_o − 1) / (k − 1) for k categories.

    >>> pabak(np.array([[40., 10.], [5., 45.]]))
    0.7
    """
    po = observed_agreement(t)
    k = t.shape[0]
    return None if po is None or k < 2 else (k * po - 1) / (k - 1)


def gwet_ac1(t: Table) -> float | None:
    """Gwet's AC1: (p_o − p_e) / (1 − p_e) with p_e = Σ_q π_q (1 − π_q) / (k − 1), π = (r + c) / 2.

    >>> round(gwet_ac1(np.array([[40., 10.], [5., 45.]])), 4)
    0.7007
    """
    n = t.sum()
    k = t.shape[0]
    if not n or k < 2:
        return None
    p = t / n
    pi = (p.sum(1) + p.sum(0)) / 2
    pe = float(pi @ (1 - pi)) / (k - 1)
    if _is_one(pe):
        return None
    return float((np.trace(p) - pe) / (1 - pe))


def prevalence_index(t: Table) -> float | None:
    """Binary tables only: |p_11 − p_22|, how lopsided the agreed-on cases are (Byrt et al. 1993).

    >>> prevalence_index(np.array([[40., 10.], [5., 45.]]))
    0.05
    """
    n = t.sum()
    return float(abs(t[0, 0] - t[1, 1]) / n) if n and t.shape == (2, 2) else None


def bias_index(t: Table) -> float | None:
    """Binary tables only: |p_12 − p_21|, how differently often the raters use each value.

    >>> bias_index(np.array([[40., 10.], [5., 45.]]))
    0.05
    """
    n = t.sum()
    return float(abs(t[0, 1] - t[1, 0]) / n) if n and t.shape == (2, 2) else None


def weighted_kappa(t: Table, weights: Literal["linear", "quadratic"] = "linear") -> float | None:
    """κ_w = 1 − Σ w_ij p_ij / Σ w_ij r_i c_j for ordered categories, w_ij = |i−j| or (i−j)².

    >>> round(weighted_kappa(np.array([[10., 2., 0.], [1., 5., 2.], [0., 1., 9.]])), 4)
    0.7847
    """
    n = t.sum()
    k = t.shape[0]
    if not n or k < 2:
        return None
    i, j = np.indices((k, k))
    w = np.abs(i - j) if weights == "linear" else (i - j) ** 2
    p = t / n
    expected = np.outer(p.sum(1), p.sum(0))
    denominator = float((w * expected).sum())
    if np.isclose(denominator, 0.0):
        return None
    return float(1 - (w * p).sum() / denominator)


def fleiss_kappa(counts: NDArray[np.float64]) -> float | None:
    """Fleiss' κ for N cases each rated by the same number m of raters.

    `counts[i, j]` is how many raters put case i in category j.
    P_i = (Σ_j n_ij² − m) / (m (m − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / (N m),
    P̄_e = Σ p_j², κ = (P̄ − P̄_e) / (1 − P̄_e).

    >>> round(fleiss_kappa(np.array([[3., 0.], [0., 3.], [2., 1.]])), 4)
    0.55
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        return None
    m = counts.sum(1)
    if not np.all(m == m[0]) or m[0] < 2:
        return None
    raters = m[0]
    per_case = (np.sum(counts**2, axis=1) - raters) / (raters * (raters - 1))
    p = counts.sum(0) / counts.sum()
    pe = float(p @ p)
    if _is_one(pe):
        return None
    return float((per_case.mean() - pe) / (1 - pe))


def fleiss_kappa_bootstrap_ci(
    counts: NDArray[np.float64], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Percentile interval of Fleiss' κ over cases resampled with replacement.

    P̄ and p_j are sums over cases, so each replicate is a weighted sum with
    multinomial case weights.

    >>> ci = fleiss_kappa_bootstrap_ci(np.array([[3., 0.], [0., 3.]] * 20), seed=1)
    >>> ci.low, ci.high, ci.degenerate
    (1.0, 1.0, 0)
    """
    counts = np.asarray(counts, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if counts.size == 0 or (fleiss_kappa(counts) is None and counts.sum(1).min() < 2):
        return BootstrapCI(None, None, resamples, resamples, seed)
    cases, raters = len(counts), counts.sum(1)[0]
    per_case = (np.sum(counts**2, axis=1) - raters) / (raters * (raters - 1))
    weights = rng.multinomial(cases, np.full(cases, 1 / cases), size=resamples)
    p_bar = weights @ per_case / cases
    p = weights @ counts / (cases * raters)
    pe = np.sum(p**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappas = (p_bar - pe) / (1 - pe)
    kappas[_is_one(pe)] = np.nan
    return _percentile(kappas, resamples, seed, level)


def _coincidences(units: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each pairable unit's contribution to the coincidence matrix, flattened: (units, k*k)."""
    m = units.sum(1)
    usable = units[m >= 2]
    weight = 1 / (usable.sum(1) - 1)
    outer = np.einsum("ui,uj->uij", usable, usable)
    outer[:, np.arange(units.shape[1]), np.arange(units.shape[1])] -= usable
    return (outer * weight[:, None, None]).reshape(len(usable), units.shape[1] ** 2)


def _alpha_from_coincidences(o: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Nominal α for each flattened coincidence matrix in `o` (B, k*k); NaN where undefined."""
    o = o.reshape(-1, k, k)
    nc = o.sum(2)
    n = nc.sum(1)
    disagree = o.sum(axis=(1, 2)) - np.trace(o, axis1=1, axis2=2)
    expected = (n**2 - np.sum(nc**2, axis=1)) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1 - disagree / expected
    alpha[~(expected > 0)] = np.nan
    return alpha


def krippendorff_alpha(units: NDArray[np.float64]) -> float | None:
    """Krippendorff's α (nominal) from per-case category counts; cases may miss raters.

    `units[u, c]` counts the raters who put case u in category c. With the
    coincidence matrix o_ck = Σ_u (pairs c,k within u) / (m_u − 1) and
    n_c = Σ_k o_ck: α = 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k.

    >>> round(krippendorff_alpha(np.array([[3., 0.], [0., 3.], [2., 1.]])), 4)
    0.6
    """
    units = np.asarray(units, dtype=np.float64)
    per_unit = _coincidences(units) if units.ndim == 2 and len(units) else np.zeros((0, 0))
    if per_unit.size == 0:
        return None
    value = _alpha_from_coincidences(per_unit.sum(0, keepdims=True), units.shape[1])[0]
    return None if np.isnan(value) else float(value)


def krippendorff_alpha_bootstrap_ci(
    units: NDArray[np.float64], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Percentile interval of α over cases resampled with replacement.

    >>> ci = krippendorff_alpha_bootstrap_ci(np.array([[3., 0.], [0., 3.]] * 20), seed=1)
    >>> ci.low, ci.high, ci.degenerate
    (1.0, 1.0, 0)
    """
    units = np.asarray(units, dtype=np.float64)
    per_unit = _coincidences(units) if units.ndim == 2 and len(units) else np.zeros((0, 0))
    rng = np.random.default_rng(seed)
    if per_unit.size == 0:
        return BootstrapCI(None, None, resamples, resamples, seed)
    count = len(per_unit)
    weights = rng.multinomial(count, np.full(count, 1 / count), size=resamples)
    alphas = _alpha_from_coincidences(weights @ per_unit, units.shape[1])
    return _percentile(alphas, resamples, seed, level)


def without_ties(t: Table, categories: Sequence[str], tie: str = "tie") -> Table:
    """The table restricted to cases where neither rater chose `tie`.

    >>> without_ties(np.array([[5., 1., 0.], [1., 2., 1.], [0., 1., 6.]]), ["A", "tie", "B"])
    array([[5., 0.],
           [0., 6.]])
    """
    keep = [i for i, c in enumerate(categories) if c != tie]
    return t[np.ix_(keep, keep)]


def strength(kappa: float) -> str:
    """Landis & Koch's words for a κ: slight, fair, moderate, substantial, almost perfect.

    >>> strength(0.42), strength(0.85), strength(-0.1)
    ('moderate', 'almost perfect', 'worse than chance')
    """
    if kappa < 0:
        return "worse than chance"
    for bound, word in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return word
    return "almost perfect"
