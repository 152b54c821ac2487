"""Where the theory says its claims show (lindyn.regime), against the closed forms and GD."""

from __future__ import annotations

import numpy as np
import pytest

from lindyn import regime, theory
from lindyn.flow import flow_crossing_time
from lindyn.regime import crossing_steps, pair_delta, separating_eta, sequential_delta, step_budget

# Spectra with what real data has: uneven gaps, ρ_i not monotone, λ_i > λ_{i+1} (the
# pair's gap first falls with δ) and one pair whose later component has a much larger ρ.
S = np.array([1.0, 0.62, 0.55, 0.31, 0.29, 0.12])
LAM = np.array([1.0, 0.3, 0.12, 0.09, 0.02, 0.05])


def gap(depth, delta, i, f_prev, f_next):
    """``t_{i+1}(f_next) − t_i(f_prev)`` of the flow, and ``t_i(f_prev)`` (flow time)."""
    later = crossing_steps(S[i + 1], LAM[i + 1], depth, 1.0, delta, f_next)
    earlier = crossing_steps(S[i], LAM[i], depth, 1.0, delta, f_prev)
    return later - earlier, earlier


def flow_fraction(depth, delta, f_prev):
    """The report's criterion on the flow's crossings: fraction of ordered pairs."""
    t = crossing_steps(S, LAM, depth, 1.0, delta, np.array([[f_prev], [0.1]]))
    ordered = t[1, 1:] > t[0, :-1] if f_prev == 0.9 else t[1, 1:] >= t[0, :-1]
    return ordered.mean()


def test_crossing_steps_are_the_flow_in_steps():
    """At depth 2, ``c/(2ηs)`` with Corollary 3's ``c = log(y(0)f/(1−f))`` (THEORY §5, §7)."""
    eta, delta, f = 0.05, 3.0, np.array([0.1, 0.5, 0.9])
    u0 = np.exp(-2 * delta)
    c = np.log((S[:, None] / LAM[:, None] / u0 - 1) * f / (1 - f))
    expected = c / (2 * eta * S[:, None])
    np.testing.assert_allclose(crossing_steps(S[:, None], LAM[:, None], 2, eta, delta, f), expected)
    deep = crossing_steps(S, LAM, 3, [[0.1], [0.2]], 1.5, 0.9)
    np.testing.assert_allclose(
        deep, flow_crossing_time(0.9, S, LAM, 3, np.exp(-4.5)) / [[0.1], [0.2]]
    )


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("f_prev", [0.5, 0.9])
def test_pair_delta_is_the_last_meeting_of_the_crossings(depth, f_prev):
    """Equality at the returned δ, out of order just below it, in order at every δ above."""
    deltas = pair_delta(S, LAM, depth, f_prev, 0.1)
    assert deltas.shape == (S.size - 1,)
    interior = 0
    for i, delta in enumerate(deltas):
        assert np.isfinite(delta) and delta >= 0
        above = delta + np.concatenate([np.geomspace(1e-6, 1.0, 30), np.linspace(1, 40, 30)])
        assert np.all(gap(depth, above, i, f_prev, 0.1)[0] > 0)
        if delta == 0:
            continue
        interior += 1
        at, scale = gap(depth, delta, i, f_prev, 0.1)
        assert abs(at) <= 1e-8 * scale
        assert gap(depth, delta - 1e-6, i, f_prev, 0.1)[0] < 0
    assert interior >= 3


def test_pair_delta_special_cases():
    s, lam = np.array([1.0, 1.0, 0.5, 0.0]), np.array([1.0, 0.5, 0.4, 0.3])
    np.testing.assert_array_equal(pair_delta(s, lam, 2, 0.5, 0.1)[[0, 2]], [np.inf, np.nan])
    # s_{i+1} ≥ s_i: never separated, even where ρ_{i+1} ≫ ρ_i orders the crossings
    assert pair_delta([0.5, 0.6], [1.0, 0.001], 2, 0.5, 0.1)[0] == np.inf
    # A later component with a far larger target is behind at every δ ≥ 0: δ = 0
    s, lam = [1.0, 0.9], [1.0, 0.009]
    assert pair_delta(s, lam, 2, 0.5, 0.1)[0] == 0.0
    t = crossing_steps(s, np.array(lam), 2, 1.0, np.linspace(0, 60, 301)[:, None], [0.5, 0.1])
    assert np.all(t[:, 1] >= t[:, 0])
    with pytest.raises(ValueError, match="depth must be an integer >= 2"):
        pair_delta(S, LAM, 1, 0.5, 0.1)
    with pytest.raises(ValueError, match="f_next must lie in"):
        pair_delta(S, LAM, 2, 0.5, 1.0)


@pytest.mark.parametrize("depth", [2, 3])
def test_sequential_delta_reaches_the_threshold_exactly(depth):
    """The fraction of ordered pairs is ≥ 0.75 from the returned δ on and below it just before."""
    result = sequential_delta(S, LAM, depth, threshold=0.75)
    np.testing.assert_array_equal(result.pairs, pair_delta(S, LAM, depth, 0.5, 0.1))
    np.testing.assert_array_equal(result.disjoint, pair_delta(S, LAM, depth, 0.9, 0.1))
    assert result.every == result.pairs.max()
    assert result.every_disjoint == result.disjoint.max()
    assert np.all(result.disjoint >= result.pairs)  # disjoint windows need more
    for delta, f_prev in ((result.fraction, 0.5), (result.fraction_disjoint, 0.9)):
        assert delta > 0
        # ⌈0.75·5⌉ = 4 of 5 pairs
        assert flow_fraction(depth, delta + 1e-9, f_prev) >= 0.75
        assert flow_fraction(depth, delta - 1e-6, f_prev) < 0.75
        for later in delta + np.linspace(0.01, 30, 50):
            assert flow_fraction(depth, later, f_prev) >= 0.75
    for delta, f_prev in ((result.every, 0.5), (result.every_disjoint, 0.9)):
        assert flow_fraction(depth, delta + 1e-9, f_prev) == 1
        assert flow_fraction(depth, delta - 1e-6, f_prev) < 1
    assert sequential_delta(S, LAM, depth, threshold=0.0).fraction == 0.0
    assert np.isnan(sequential_delta(S[:1], LAM[:1], depth).fraction)
    with pytest.raises(ValueError, match="threshold must lie in"):
        sequential_delta(S, LAM, depth, threshold=1.5)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_step_budget_covers_exact_gd_crossings(depth):
    """Per component, exact scalar GD (THEORY §4) crosses 0.9·ρ within the budget.

    Random components, step sizes up to the monotone limit ``ηLλρ^{2−2/L} ≤ 1``; at
    depth 2 Corollary 3's t⁺ alone (margin 1) must cover it; at depth 1 from ``u(0) = 0``.
    """
    rng = np.random.default_rng(depth)
    n = 300
    s = rng.uniform(0.05, 1, n)
    rho = np.exp(rng.uniform(-2, 2, n))
    lam = s / rho
    delta = rng.uniform(0.0, 3.0 if depth < 3 else 1.5, n)
    eta = rng.uniform(0.001, 1.0, n) / (depth * lam * rho ** (2 - 2 / depth))
    margin = 1.0 if depth == 2 else regime.BUDGET_MARGIN
    budget = np.array(
        [step_budget([s[i]], [lam[i]], depth, eta[i], delta[i], margin=margin)[0] for i in range(n)]
    )
    start = np.inf if depth == 1 else delta  # the depth-1 budget is for u(0) = 0
    u = theory.gd_component(s, lam, depth, eta, start, int(budget.max()))
    crossing = theory.first_crossing(u, 0.9 * rho, 1.0)
    assert np.all((crossing >= 0) & (crossing <= budget))
    # ... and is not wasteful: about margin × the need for long runs
    long = budget > 100
    assert np.median(budget[long] / crossing[long]) < 1.2 * margin


def test_step_budget_is_the_latest_component_with_margin_and_cap():
    eta, delta = np.array([0.02, 0.1]), np.array([[2.0], [4.0]])
    budget, capped = step_budget(S, LAM, 2, eta, delta, max_steps=10**9)
    assert budget.shape == capped.shape == (2, 2) and budget.dtype == np.int64
    assert not capped.any()
    _, t_plus = theory.crossing_bracket(S, LAM, np.exp(-2 * delta[..., None]), eta[:, None], 0.9)
    np.testing.assert_array_equal(budget, np.ceil(1.5 * t_plus.max(axis=-1)))
    # at depth 3 the flow's crossing
    budget, _ = step_budget(S, LAM, 3, 0.05, 1.0, margin=2.0)
    assert budget == np.ceil(2.0 * crossing_steps(S, LAM, 3, 0.05, 1.0, 0.9).max())
    assert budget.shape == ()
    # the cap
    budget, capped = step_budget(S, LAM, 2, eta, delta, max_steps=500)
    assert np.all(budget <= 500) and capped[1, 0] and budget[1, 0] == 500
    np.testing.assert_array_equal(capped, np.ceil(1.5 * t_plus.max(axis=-1)) > 500)
    # beyond monotone GD (ηs_1 > 1/2 at depth 2) the need is unknown
    assert step_budget(S, LAM, 2, 0.6, 2.0, max_steps=123) == (123, True)
    # depth 1: from u(0) = 0, the latest start, whatever δ: log(10)/(ηλ) steps
    expected = np.ceil(1.5 * np.log(10) / (0.1 * LAM[: S.size]).min())
    assert step_budget(S, LAM, 1, 0.1, [2.0, -5.0])[0].tolist() == [expected] * 2
    # every crossing at step 0: at least one step
    assert step_budget([1.0], [1.0], 2, 0.1, -1.0)[0] == 1
    with pytest.raises(ValueError, match="margin must be"):
        step_budget(S, LAM, 2, 0.1, 2.0, margin=0.5)
    with pytest.raises(ValueError, match="max_steps must be"):
        step_budget(S, LAM, 2, 0.1, 2.0, max_steps=0)


@pytest.mark.parametrize("delta", [4.0, 15.0, 40.0])
def test_separating_eta_is_where_corollary3_stops_separating(delta):
    """theory.separation holds just below the returned η and at no η above it."""
    result = separating_eta(S, LAM, delta)
    assert result.corollary3.shape == result.eigengap.shape == (S.size - 1,)
    eta_max = 0.5 / S[:-1]
    kinds = set()
    for i, eta in enumerate(result.corollary3):
        pair = (S[i : i + 2], LAM[i : i + 2], np.exp(-2 * delta))
        above = eta + np.geomspace(1e-9, 1, 60) * (eta_max[i] - eta + 1e-3)
        assert not theory.separation(*pair, above[:, None], 0.1).any()
        if eta == 0:
            kinds.add("none")
            grid = np.geomspace(1e-9, eta_max[i], 200)[:, None]
            assert not theory.separation(*pair, grid, 0.1).any()
            continue
        kinds.add("max" if eta == eta_max[i] else "interior")
        assert theory.separation(*pair, eta * (1 - 1e-9), 0.1)[0]
    assert "interior" in kinds
    # the eigen-gap condition's bound: margin positive just below, negative just above
    bound = result.eigengap
    assert np.all(theory.eigengap_condition(S, bound * (1 - 1e-9))[0] | (bound == 0))
    assert not theory.eigengap_condition(S, bound * (1 + 1e-9) + 1e-300)[0].any()


def test_separating_eta_broadcasts_over_delta_and_grows_with_it():
    deltas = np.array([[3.0, 8.0], [20.0, 60.0]])
    result = separating_eta(S, LAM, deltas)
    assert result.corollary3.shape == (2, 2, S.size - 1)
    np.testing.assert_array_equal(result.corollary3[1, 0], separating_eta(S, LAM, 20.0).corollary3)
    flat = result.corollary3.reshape(4, -1)
    assert np.all(np.diff(flat, axis=0) >= 0)  # a smaller init separates at larger steps
    # Where the flow does not separate (t_{i+1}(0.1) ≤ t_i(0.9)), no η does.
    disjoint = pair_delta(S, LAM, 2, 0.9, 0.1)
    np.testing.assert_array_equal(flat[0] == 0, disjoint > 3.0)
    with pytest.raises(ValueError, match="f must lie in"):
        separating_eta(S, LAM, 2.0, f=0.5)
