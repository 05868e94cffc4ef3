"""evaltui.stats.agreement against reference implementations and plain loops.

Cohen's κ and weighted κ are checked against scikit-learn, the analytic κ
interval and Fleiss' κ against statsmodels, Krippendorff's α against the
`krippendorff` package, and the figures no package has (p_o, PABAK, AC1, the
prevalence and bias indices) against straightforward loops over the labels.
The bootstrap interval gets a seeded coverage simulation on raters whose
population κ is known exactly.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from evaltui.stats.agreement import (
    Z95,
    BootstrapCI,
    bias_index,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    gwet_ac1,
    kappa_analytic_ci,
    kappa_bootstrap_ci,
    krippendorff_alpha,
    krippendorff_alpha_bootstrap_ci,
    observed_agreement,
    pabak,
    prevalence_index,
    strength,
    weighted_kappa,
    without_ties,
)

TOL = {"rel": 1e-9, "abs": 1e-12}
POOL = ("pass", "fail", "tie", "skip", "good", "bad")
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


@st.composite
def category_lists(draw: st.DrawFn, min_k: int = 2, max_k: int = 4) -> list[str]:
    """2–4 distinct category names in a random (not alphabetical) order."""
    k = draw(st.integers(min_k, max_k))
    return list(draw(st.permutations(POOL))[:k])


@st.composite
def _flipped(draw: st.DrawFn, base: list[str], cats: list[str], share: float) -> list[str]:
    """`base` with up to about `share` of its positions relabelled at random."""
    n = len(base)
    flips = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from(cats)),
            max_size=max(1, math.ceil(share * n)),
        )
    )
    out = list(base)
    for i, label in flips:
        out[i] = label
    return out


KINDS = ("free", "correlated", "skewed", "single", "two_cases", "never_agree")


@st.composite
def label_sets(draw: st.DrawFn) -> tuple[list[str], list[str], list[str]]:
    """(categories, rater 1's labels, rater 2's labels), 2..300 cases."""
    cats = draw(category_lists())
    k = len(cats)
    kind = draw(st.sampled_from(KINDS))
    n = 2 if kind == "two_cases" else draw(st.integers(2, 300))
    labels = st.lists(st.sampled_from(cats), min_size=n, max_size=n)
    if kind in ("free", "two_cases"):
        a, b = draw(labels), draw(labels)
    elif kind == "correlated":
        a = draw(labels)
        b = draw(_flipped(a, cats, 0.4))
    elif kind == "skewed":
        # One category at ~95% for both raters (the κ paradox territory).
        dominant = draw(st.sampled_from(cats))
        a = draw(_flipped([dominant] * n, cats, 0.05))
        b = draw(_flipped([dominant] * n, cats, 0.05))
    elif kind == "single":
        only = draw(st.sampled_from(cats))
        a, b = [only] * n, [only] * n
    else:  # never_agree
        a = draw(labels)
        offsets = draw(st.lists(st.integers(1, k - 1), min_size=n, max_size=n))
        b = [cats[(cats.index(x) + o) % k] for x, o in zip(a, offsets, strict=True)]
    return cats, a, b


# Cases every run must see, whatever Hypothesis draws.
SINGLE = (["pass", "fail"], ["pass"] * 7, ["pass"] * 7)
SINGLE_UNUSED_FIRST = (["tie", "good", "bad"], ["bad"] * 3, ["bad"] * 3)
TWO_CASES = (["pass", "fail"], ["pass", "fail"], ["pass", "fail"])
TWO_CASES_DISAGREE = (["pass", "fail"], ["pass", "fail"], ["fail", "pass"])
NEVER_AGREE = (["a", "b", "c"], list("abcabc"), list("bcacab"))
SKEWED = (
    ["pass", "fail", "tie"],
    ["pass"] * 95 + ["fail"] * 3 + ["tie"] * 2,
    ["pass"] * 94 + ["fail"] + ["pass"] * 2 + ["tie"] + ["pass"] * 2,
)
ONE_RATER_CONSTANT = (["pass", "fail"], ["pass"] * 5, ["pass", "fail", "pass", "fail", "pass"])
ALL_EXAMPLES = (
    SINGLE,
    SINGLE_UNUSED_FIRST,
    TWO_CASES,
    TWO_CASES_DISAGREE,
    NEVER_AGREE,
    SKEWED,
    ONE_RATER_CONSTANT,
)


def with_examples(test):  # type: ignore[no-untyped-def]
    for case in ALL_EXAMPLES:
        test = example(case)(test)
    return test


# ---------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------


def sklearn_kappa(
    a: list[str], b: list[str], cats: list[str], weights: str | None = None
) -> tuple[float, bool]:
    """scikit-learn's κ, and whether it warned that κ is undefined."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = cohen_kappa_score(a, b, labels=cats, weights=weights)
    warned = any(issubclass(w.category, UndefinedMetricWarning) for w in caught)
    return float(value), warned


def loop_table(a: list[str], b: list[str], cats: list[str]) -> list[list[int]]:
    """The confusion table counted by hand."""
    table = [[0] * len(cats) for _ in cats]
    for x, y in zip(a, b, strict=True):
        table[cats.index(x)][cats.index(y)] += 1
    return table


def assert_matches(ours: float | None, ref: float) -> None:
    """None exactly where the reference is NaN, otherwise equal."""
    if ours is None:
        assert math.isnan(ref), f"ours is None but the reference is {ref}"
    else:
        assert not math.isnan(ref), f"ours is {ours} but the reference is NaN"
        assert ours == pytest.approx(ref, **TOL)


# ---------------------------------------------------------------------------
# Two raters: the table and Cohen's κ against scikit-learn
# ---------------------------------------------------------------------------


@FAST
@given(label_sets())
@with_examples
def test_confusion_matches_sklearn_and_a_loop(case):
    cats, a, b = case
    t = confusion(a, b, cats)
    assert t.shape == (len(cats), len(cats))
    assert t.tolist() == loop_table(a, b, cats)
    assert t.tolist() == sk_confusion_matrix(a, b, labels=cats).tolist()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(label_sets())
@with_examples
def test_cohen_kappa_matches_sklearn(case):
    cats, a, b = case
    ours = cohen_kappa(confusion(a, b, cats))
    ref, warned = sklearn_kappa(a, b, cats)
    assert_matches(ours, ref)
    # sklearn says "undefined" exactly when it returns NaN, i.e. exactly when we return None.
    assert warned == (ours is None)
    if ours is None:
        assert len(set(a) | set(b)) == 1, "κ is undefined only when one category is used"


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
@FAST
@given(label_sets())
@with_examples
def test_weighted_kappa_matches_sklearn(weights, case):
    cats, a, b = case
    ours = weighted_kappa(confusion(a, b, cats), weights)
    ref, warned = sklearn_kappa(a, b, cats, weights=weights)
    assert_matches(ours, ref)
    assert warned == (ours is None)


def test_weighted_kappa_depends_on_category_order():
    # The same labels, categories in two orders: the weights follow the order given.
    a = ["lo", "mid", "hi", "hi", "mid", "lo", "lo"]
    b = ["lo", "hi", "hi", "mid", "mid", "mid", "lo"]
    for cats in (["lo", "mid", "hi"], ["mid", "lo", "hi"]):
        ours = weighted_kappa(confusion(a, b, cats), "quadratic")
        assert ours == pytest.approx(sklearn_kappa(a, b, cats, "quadratic")[0], **TOL)
    ordered = weighted_kappa(confusion(a, b, ["lo", "mid", "hi"]), "quadratic")
    shuffled = weighted_kappa(confusion(a, b, ["mid", "lo", "hi"]), "quadratic")
    assert ordered != pytest.approx(shuffled)


def test_cohen_kappa_defined_for_large_nearly_constant_tables():
    n = 100_001
    a = ["A"] * n
    b = ["A"] * (n - 1) + ["B"]
    ref, warned = sklearn_kappa(a, b, ["A", "B"])
    assert not warned
    assert ref == 0.0
    assert cohen_kappa(confusion(a, b, ["A", "B"])) == pytest.approx(ref, **TOL)


# ---------------------------------------------------------------------------
# The analytic interval against statsmodels
# ---------------------------------------------------------------------------


def test_analytic_ci_is_clipped_to_the_range_of_kappa():
    # statsmodels gives the Wald interval as it comes: past 1 on few cases.
    table = np.array([[4.0, 0.0], [1.0, 4.0]])
    ref = sm_cohens_kappa(table)
    assert ref.kappa_upp > 1.0
    low, high = kappa_analytic_ci(table)
    assert (low, high) == pytest.approx((ref.kappa_low, 1.0), **TOL)
    disagree = np.array([[0.0, 4.0], [4.0, 1.0]])
    assert sm_cohens_kappa(disagree).kappa_low < -1.0
    assert kappa_analytic_ci(disagree)[0] == -1.0


def test_analytic_ci_uses_the_same_normal_quantile_as_statsmodels():
    # statsmodels' KappaResults uses alpha = 0.025 per side: norm.isf(0.025).
    assert scipy_stats.norm.isf(0.025) == pytest.approx(Z95, rel=1e-15)
    result = sm_cohens_kappa(np.array([[40.0, 10.0], [5.0, 45.0]]))
    assert result["alpha"] == 0.025
    low, high = kappa_analytic_ci(np.array([[40.0, 10.0], [5.0, 45.0]]))
    assert (low, high) == pytest.approx((result.kappa_low, result.kappa_upp), **TOL)


@FAST
@given(label_sets())
@with_examples
def test_analytic_ci_matches_statsmodels(case):
    cats, a, b = case
    ours = kappa_analytic_ci(confusion(a, b, cats))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = sm_cohens_kappa(np.array(loop_table(a, b, cats), dtype=float))
    if ours is None:
        assert math.isnan(ref.kappa), f"ours is None but statsmodels' κ is {ref.kappa}"
        return
    low, high = ours
    # Ours is statsmodels' interval clipped to [-1, 1], the range of κ; the centre and
    # width are compared where nothing was clipped.
    clipped = low == -1.0 or high == 1.0
    if not clipped:
        assert (low + high) / 2 == pytest.approx(ref.kappa, **TOL)
    # The variance is a difference of O(1) terms divided by n (1 − p_e)²; where it is zero in
    # exact arithmetic (κ = 1, or one rater constant) each side may land on ±1e-14, and
    # statsmodels takes sqrt of the negative (NaN) where ours clamps at 0. Compare the
    # variances up to that rounding, and the endpoints up to what it does through sqrt.
    n = len(a)
    pe = sum(a.count(c) * b.count(c) for c in cats) / n**2
    noise = 1e-14 / (n * (1 - pe) ** 2)
    variance = float(ref.var_kappa)
    assert variance > -noise
    if not clipped:
        width = ((high - low) / (2 * Z95)) ** 2
        assert width == pytest.approx(max(variance, 0.0), rel=1e-9, abs=noise)
    slack = Z95 * (math.sqrt(max(variance, 0.0) + noise) - math.sqrt(max(variance - noise, 0.0)))
    half = Z95 * math.sqrt(max(variance, 0.0))
    ref_low, ref_high = (ref.kappa_low, ref.kappa_upp) if variance >= 0 else (ref.kappa,) * 2
    assert np.isfinite([ref_low, ref_high]).all()
    assert ref_low == pytest.approx(ref.kappa - half, **TOL)
    ref_low, ref_high = max(ref_low, -1.0), min(ref_high, 1.0)
    assert low == pytest.approx(ref_low, rel=1e-9, abs=max(1e-12, slack))
    assert high == pytest.approx(ref_high, rel=1e-9, abs=max(1e-12, slack))


# ---------------------------------------------------------------------------
# Figures no package has: plain loops over the label lists
# ---------------------------------------------------------------------------


@FAST
@given(label_sets())
@with_examples
def test_loop_computed_figures(case):
    cats, a, b = case
    t = confusion(a, b, cats)
    n, k = len(a), len(cats)

    agree = 0
    for x, y in zip(a, b, strict=True):
        if x == y:
            agree += 1
    po = agree / n
    assert observed_agreement(t) == pytest.approx(po, **TOL)
    assert pabak(t) == pytest.approx((k * po - 1) / (k - 1), **TOL)

    counts = Counter(a) + Counter(b)
    pe_gwet = 0.0
    for c in cats:
        pi = counts[c] / (2 * n)
        pe_gwet += pi * (1 - pi)
    pe_gwet /= k - 1
    assert gwet_ac1(t) == pytest.approx((po - pe_gwet) / (1 - pe_gwet), **TOL)

    if k == 2:
        first, second = cats
        cells = Counter(zip(a, b, strict=True))
        prevalence = abs(cells[first, first] - cells[second, second]) / n
        bias = abs(cells[first, second] - cells[second, first]) / n
        assert prevalence_index(t) == pytest.approx(prevalence, **TOL)
        assert bias_index(t) == pytest.approx(bias, **TOL)
    else:
        assert prevalence_index(t) is None
        assert bias_index(t) is None


def test_loop_figures_on_a_worked_example():
    t = np.array([[40.0, 10.0], [5.0, 45.0]])
    assert observed_agreement(t) == pytest.approx(0.85)
    assert pabak(t) == pytest.approx(0.7)
    # π = (0.475, 0.525); p_e = 2·0.475·0.525 = 0.49875; AC1 = (0.85 − 0.49875)/0.50125
    assert gwet_ac1(t) == pytest.approx((0.85 - 0.49875) / 0.50125)
    assert prevalence_index(t) == pytest.approx(0.05)
    assert bias_index(t) == pytest.approx(0.05)


def test_empty_table_is_undefined_not_nan():
    t = np.zeros((2, 2))
    for f in (observed_agreement, cohen_kappa, kappa_analytic_ci, pabak, gwet_ac1):
        assert f(t) is None, f.__name__
    assert prevalence_index(t) is None
    assert bias_index(t) is None
    assert weighted_kappa(t, "linear") is None


def test_bootstrap_on_an_empty_table_is_all_degenerate():
    with np.errstate(all="ignore"):
        ci = kappa_bootstrap_ci(np.zeros((2, 2)), resamples=50, seed=3)
    assert ci == BootstrapCI(None, None, 50, 50, 3)


@FAST
@given(category_lists(3, 4), st.data())
def test_without_ties_equals_the_table_of_untied_cases(cats, data):
    cats = [*cats[:-1], "tie"] if "tie" not in cats else cats
    n = data.draw(st.integers(0, 60))
    labels = st.lists(st.sampled_from(cats), min_size=n, max_size=n)
    a, b = data.draw(labels), data.draw(labels)
    kept = [c for c in cats if c != "tie"]
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x != "tie" and y != "tie"]
    expected = loop_table([x for x, _ in pairs], [y for _, y in pairs], kept)
    assert without_ties(confusion(a, b, cats), cats).tolist() == expected


# ---------------------------------------------------------------------------
# Fleiss' κ against statsmodels
# ---------------------------------------------------------------------------


@st.composite
def rater_matrices(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """(categories, cases × raters labels) with 3–6 raters, every rater rating every case."""
    cats = draw(category_lists())
    m = draw(st.integers(3, 6))
    kind = draw(st.sampled_from(["free", "correlated", "skewed", "single", "two_cases"]))
    n = 2 if kind == "two_cases" else draw(st.integers(2, 60))
    row = st.lists(st.sampled_from(cats), min_size=m, max_size=m)
    if kind in ("free", "two_cases"):
        rows = [draw(row) for _ in range(n)]
    elif kind == "correlated":
        truth = draw(st.lists(st.sampled_from(cats), min_size=n, max_size=n))
        rows = [draw(_flipped([t] * m, cats, 0.3)) for t in truth]
    elif kind == "skewed":
        dominant = draw(st.sampled_from(cats))
        flat = draw(_flipped([dominant] * (n * m), cats, 0.05))
        rows = [flat[i * m : (i + 1) * m] for i in range(n)]
    else:
        only = draw(st.sampled_from(cats))
        rows = [[only] * m for _ in range(n)]
    return cats, rows


@FAST
@given(rater_matrices())
@example((["pass", "fail"], [["pass"] * 4] * 5))
@example((["pass", "fail"], [["pass", "pass", "fail"], ["fail", "fail", "pass"]]))
@example((["a", "b", "c"], [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]))
def test_fleiss_kappa_matches_statsmodels(case):
    cats, rows = case
    counts, _ = aggregate_raters(np.array(rows))
    ours = fleiss_kappa(counts)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = float(sm_fleiss_kappa(counts, method="fleiss"))
    assert_matches(ours, ref)
    if ours is None:
        assert len({x for r in rows for x in r}) == 1
    # Categories nobody used (columns of zeros) change nothing.
    full = [[r.count(c) for c in cats] for r in rows]
    assert_matches(fleiss_kappa(np.array(full, dtype=float)), math.nan if ours is None else ours)


def test_fleiss_kappa_undefined_for_unequal_or_single_raters():
    assert fleiss_kappa(np.array([[2.0, 1.0], [1.0, 1.0]])) is None
    assert fleiss_kappa(np.array([[1.0, 0.0], [0.0, 1.0]])) is None
    assert fleiss_kappa(np.zeros((0, 2))) is None


# ---------------------------------------------------------------------------
# Krippendorff's α against the krippendorff package
# ---------------------------------------------------------------------------


@st.composite
def reliability_data(draw: st.DrawFn) -> tuple[int, list[list[float]]]:
    """(k, raters × units codes 0..k-1 or NaN); some draws have no unit rated twice."""
    k = draw(st.integers(2, 4))
    raters = draw(st.integers(2, 5))
    kind = draw(st.sampled_from(["free", "correlated", "skewed", "single", "two_units", "sparse"]))
    n = 2 if kind == "two_units" else draw(st.integers(1, 60))
    code = st.integers(0, k - 1)
    if kind in ("free", "two_units", "sparse"):
        grid = [[draw(code) for _ in range(n)] for _ in range(raters)]
    elif kind == "correlated":
        truth = draw(st.lists(code, min_size=n, max_size=n))
        grid = [draw(_flipped(truth, list(range(k)), 0.3)) for _ in range(raters)]
    elif kind == "skewed":
        dominant = draw(code)
        grid = [draw(_flipped([dominant] * n, list(range(k)), 0.05)) for _ in range(raters)]
    else:
        only = draw(code)
        grid = [[only] * n for _ in range(raters)]
    if kind == "sparse":
        missing = draw(st.lists(st.booleans(), min_size=raters * n, max_size=raters * n))
    else:
        holes = draw(st.lists(st.integers(0, raters * n - 1), max_size=raters * n // 4))
        missing = [i in set(holes) for i in range(raters * n)]
    data = [
        [math.nan if missing[r * n + u] else float(grid[r][u]) for u in range(n)]
        for r in range(raters)
    ]
    return k, data


def unit_counts(k: int, data: list[list[float]]) -> np.ndarray:
    """units × categories counts, counted by hand."""
    n = len(data[0])
    counts = [[0] * k for _ in range(n)]
    for row in data:
        for u, value in enumerate(row):
            if not math.isnan(value):
                counts[u][int(value)] += 1
    return np.array(counts, dtype=float)


def reference_alpha(data: list[list[float]]) -> float:
    """krippendorff.alpha, NaN where it raises or divides by zero."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(
                krippendorff.alpha(reliability_data=np.array(data), level_of_measurement="nominal")
            )
    except ValueError:
        return math.nan


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(reliability_data())
@example((2, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # one value throughout
@example((3, [[1.0, 0.0, math.nan], [1.0, math.nan, 2.0]]))  # the others unpairable
@example((2, [[0.0, math.nan], [math.nan, 1.0]]))  # no unit rated twice
@example((2, [[0.0, 1.0], [0.0, 1.0]]))  # two units, perfect
@example((2, [[0.0, 1.0], [1.0, 0.0]]))  # two units, never agree
@example((3, [[0.0, math.nan, 1.0, 2.0], [0.0, 1.0, math.nan, 2.0], [math.nan, 1.0, 1.0, 0.0]]))
def test_krippendorff_alpha_matches_the_package(case):
    k, data = case
    ours = krippendorff_alpha(unit_counts(k, data))
    ref = reference_alpha(data)
    assert_matches(ours, ref)


KRIPPENDORFF_NO_PAIRS = [
    pytest.param(np.zeros((0, 2)), id="no-units"),
    pytest.param(np.array([[1.0, 0.0], [0.0, 1.0]]), id="one-rater-per-unit"),
    pytest.param(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), id="one-or-no-rater"),
]


@pytest.mark.parametrize("units", KRIPPENDORFF_NO_PAIRS)
def test_krippendorff_alpha_without_pairable_units(units):
    if units.shape[0]:
        data = [[math.nan] * units.shape[0] for _ in range(int(units.sum(1).max()) or 1)]
        for u, row in enumerate(units):
            for c, count in enumerate(row):
                for r in range(int(count)):
                    data[r][u] = float(c)
        assert math.isnan(reference_alpha(data))
    assert krippendorff_alpha(units) is None


@pytest.mark.parametrize("units", KRIPPENDORFF_NO_PAIRS)
def test_krippendorff_bootstrap_without_pairable_units(units):
    assert krippendorff_alpha_bootstrap_ci(units, resamples=20, seed=4) == BootstrapCI(
        None, None, 20, 20, 4
    )


def test_krippendorff_bootstrap_is_seeded_and_counts_degenerate_replicates():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, size=80)
    units = np.zeros((80, 3))
    for u, t in enumerate(truth):
        for _ in range(3):
            units[u, t if rng.random() < 0.8 else rng.integers(0, 3)] += 1
    first = krippendorff_alpha_bootstrap_ci(units, resamples=500, seed=11)
    again = krippendorff_alpha_bootstrap_ci(units, resamples=500, seed=11)
    other = krippendorff_alpha_bootstrap_ci(units, resamples=500, seed=12)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.degenerate == 0
    alpha = krippendorff_alpha(units)
    assert first.low < alpha < first.high
    # Two units each rated the same by both raters: a replicate of one unit twice is
    # single-valued (undefined); the rest are α = 1.
    tiny = krippendorff_alpha_bootstrap_ci(
        np.array([[2.0, 0.0], [0.0, 2.0]]), resamples=1000, seed=5
    )
    assert 350 < tiny.degenerate < 650
    assert (tiny.low, tiny.high) == (1.0, 1.0)
    assert krippendorff_alpha_bootstrap_ci(
        np.array([[2.0, 0.0], [3.0, 0.0]]), resamples=30, seed=1
    ) == BootstrapCI(None, None, 30, 30, 1)


# ---------------------------------------------------------------------------
# The κ bootstrap interval
# ---------------------------------------------------------------------------

WORKED = np.array([[40.0, 10.0], [5.0, 45.0]])


def test_bootstrap_is_deterministic_for_a_seed():
    first = kappa_bootstrap_ci(WORKED, resamples=800, seed=42)
    assert first == kappa_bootstrap_ci(WORKED, resamples=800, seed=42)
    assert (first.resamples, first.seed, first.degenerate) == (800, 42, 0)
    assert first.low < cohen_kappa(WORKED) < first.high


def test_bootstrap_seeds_give_slightly_different_intervals():
    intervals = {
        (ci.low, ci.high)
        for ci in (kappa_bootstrap_ci(WORKED, resamples=800, seed=s) for s in range(5))
    }
    assert len(intervals) == 5
    lows, highs = zip(*intervals, strict=True)
    assert max(lows) - min(lows) < 0.05
    assert max(highs) - min(highs) < 0.05


def test_bootstrap_two_case_table_counts_degenerate_replicates():
    # Two cases, one agreed "pass" and one agreed "fail": a replicate drawing the same
    # case twice has p_e = 1 (undefined); every other replicate has κ = 1.
    ci = kappa_bootstrap_ci(np.array([[1.0, 0.0], [0.0, 1.0]]), resamples=1000, seed=3)
    assert 400 < ci.degenerate < 600  # Binomial(1000, 1/2)
    assert (ci.low, ci.high) == (1.0, 1.0)


def test_bootstrap_skewed_table_builds_the_interval_from_the_defined_replicates():
    # 18 agreed "pass", one each way off the diagonal: a replicate is undefined when all
    # 20 draws land on the (pass, pass) cell, probability 0.9^20 ≈ 0.1216.
    t = np.array([[18.0, 1.0], [1.0, 0.0]])
    resamples, seed = 4000, 9
    ci = kappa_bootstrap_ci(t, resamples=resamples, seed=seed)
    p = 0.9**20
    sd = math.sqrt(resamples * p * (1 - p))
    assert abs(ci.degenerate - resamples * p) < 5 * sd
    # The documented resampling (one Multinomial(n, t / n) draw per replicate), with κ of
    # each replicate from cohen_kappa and the undefined ones left out.
    draws = np.random.default_rng(seed).multinomial(20, (t / 20).ravel(), size=resamples)
    kappas = [cohen_kappa(d.reshape(2, 2).astype(float)) for d in draws]
    defined = [x for x in kappas if x is not None]
    assert ci.degenerate == resamples - len(defined)
    assert (ci.low, ci.high) == pytest.approx(tuple(np.percentile(defined, [2.5, 97.5])), **TOL)


def test_bootstrap_all_degenerate_gives_no_interval():
    ci = kappa_bootstrap_ci(np.array([[30.0, 0.0], [0.0, 0.0]]), resamples=200, seed=1)
    assert ci == BootstrapCI(None, None, 200, 200, 1)


# ---------------------------------------------------------------------------
# Coverage simulation: raters with a known population κ
# ---------------------------------------------------------------------------


def population_table(prevalence: list[float], accuracy: tuple[float, float]) -> np.ndarray:
    """P(rater 1 says i, rater 2 says j) when each rater, independently given the true class,
    gives it with probability s and otherwise a uniformly random category (possibly the true
    one)."""
    k = len(prevalence)
    table = np.zeros((k, k))
    for z, pz in enumerate(prevalence):
        for i in range(k):
            for j in range(k):
                p1 = accuracy[0] * (i == z) + (1 - accuracy[0]) / k
                p2 = accuracy[1] * (j == z) + (1 - accuracy[1]) / k
                table[i, j] += pz * p1 * p2
    return table


def test_coverage_of_the_95_percent_intervals():
    prevalence, accuracy, n, runs = [0.5, 0.3, 0.2], (0.85, 0.75), 200, 400
    population = population_table(prevalence, accuracy)
    assert population.sum() == pytest.approx(1.0)
    po = sum(population[i, i] for i in range(3))
    pe = sum(population[i, :].sum() * population[:, i].sum() for i in range(3))
    true_kappa = (po - pe) / (1 - pe)

    rng = np.random.default_rng(20240917)
    tables = rng.multinomial(n, population.ravel(), size=runs).reshape(runs, 3, 3)
    boot_hits = analytic_hits = 0
    for i, table in enumerate(tables.astype(float)):
        ci = kappa_bootstrap_ci(table, resamples=1000, seed=i)
        assert ci.degenerate == 0
        boot_hits += ci.low <= true_kappa <= ci.high
        low, high = kappa_analytic_ci(table)
        analytic_hits += low <= true_kappa <= high
    boot, analytic = boot_hits / runs, analytic_hits / runs
    message = (
        f"true κ = {true_kappa:.4f}; coverage over {runs} runs of n={n}: "
        f"bootstrap {boot:.4f}, analytic {analytic:.4f}"
    )
    assert 0.93 <= boot <= 0.97, message
    assert 0.93 <= analytic <= 0.97, message


# ---------------------------------------------------------------------------
# Landis & Koch words
# ---------------------------------------------------------------------------


def _above(x: float) -> float:
    return math.nextafter(x, math.inf)


@pytest.mark.parametrize(
    ("kappa", "word"),
    [
        (-1.0, "worse than chance"),
        (-1e-12, "worse than chance"),
        (-0.0, "slight"),
        (0.0, "slight"),
        (0.2, "slight"),
        (_above(0.2), "fair"),
        (0.4, "fair"),
        (_above(0.4), "moderate"),
        (0.6, "moderate"),
        (_above(0.6), "substantial"),
        (0.8, "substantial"),
        (_above(0.8), "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_strength_boundaries(kappa, word):
    assert strength(kappa) == word


ORDER = ["worse than chance", "slight", "fair", "moderate", "substantial", "almost perfect"]


@given(
    st.floats(-1, 1, allow_nan=False),
    st.floats(-1, 1, allow_nan=False),
)
@settings(max_examples=100, deadline=None)
def test_strength_is_monotone(x, y):
    low, high = sorted((x, y))
    assert ORDER.index(strength(low)) <= ORDER.index(strength(high))


def test_fleiss_bootstrap_matches_a_plain_resampling_loop() -> None:
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    from evaltui.stats.agreement import fleiss_kappa_bootstrap_ci

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, 300)
    ratings = np.where(rng.random((300, 4)) < 0.8, truth[:, None], rng.integers(0, 3, (300, 4)))
    counts = np.stack([(ratings == c).sum(1) for c in range(3)], axis=1).astype(float)
    ours = fleiss_kappa_bootstrap_ci(counts, resamples=2000, seed=1)
    assert ours == fleiss_kappa_bootstrap_ci(counts, resamples=2000, seed=1)
    loop = [sm_fleiss(counts[rng.integers(0, 300, 300)]) for _ in range(2000)]
    low, high = np.percentile(loop, [2.5, 97.5])
    assert ours.degenerate == 0
    assert ours.low == pytest.approx(low, abs=0.015) and ours.high == pytest.approx(high, abs=0.015)
    assert ours.low < sm_fleiss(counts) < ours.high
