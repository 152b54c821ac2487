"""Gradient-flow closed forms (lindyn.flow) against independent integrations."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import commuting_moments
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad, solve_ivp

from lindyn.flow import (
    figure1_curves,
    flow_component,
    flow_crossing_time,
    flow_full,
    flow_linear,
    flow_time,
)
from lindyn.theory import tau


def scalar_flow_reference(t, s, lam, depth, u0):
    """solve_ivp of du/dt = L u^{2-2/L}(s - λu); in log u for L ≥ 2 (tiny u0)."""
    t = np.asarray(t, dtype=float)
    if depth == 1:
        sol = solve_ivp(
            lambda _t, y: s - lam * y,
            (0, t[-1]),
            [u0],
            t_eval=t,
            method="DOP853",
            rtol=1e-13,
            atol=1e-14,
        )
        return sol.y[0]

    def rhs(_t, y):
        u = np.exp(y[0])
        return [depth * u ** (1 - 2 / depth) * (s - lam * u)]

    sol = solve_ivp(
        rhs, (0, t[-1]), [np.log(u0)], t_eval=t, method="DOP853", rtol=1e-13, atol=1e-13
    )
    return np.exp(sol.y[0])


def log_quadrature_time(u, s, lam, depth, u0):
    """t(u) by adaptive quadrature in x = log v (dv = v dx)."""

    def integrand(x):
        v = np.exp(x)
        return v / (depth * v ** (2 - 2 / depth) * (s - lam * v))

    value, _ = quad(integrand, np.log(u0), np.log(u), epsabs=0, epsrel=1e-13, limit=500)
    return value


def aligned_layers(u, v, r, depth, delta):
    a0 = np.exp(-delta)
    if depth == 1:
        return [a0 * u[:, :r] @ v[:, :r].T]
    middle = [a0 * np.eye(r) for _ in range(depth - 2)]
    return [a0 * u[:, :r], *middle, a0 * v[:, :r].T]


# (s, λ, u0): small init below ρ, init above ρ, pure decay s = 0.
CASES = [(1.7, 0.8, 1e-6), (0.6, 1.9, 2.0), (0.0, 1.3, 0.7), (2.5, 0.3, 0.05)]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(("s", "lam", "u0"), CASES)
def test_flow_component_matches_scalar_ode(depth, s, lam, u0):
    rho = s / lam
    t_end = 8.0 if s == 0 or u0 > rho else 1.5 * flow_time(0.999 * rho, s, lam, depth, u0)
    t = np.linspace(0, t_end, 40)
    np.testing.assert_allclose(
        flow_component(t, s, lam, depth, u0),
        scalar_flow_reference(t, s, lam, depth, u0),
        rtol=1e-9,
    )


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_flow_component_without_variance_grows(depth):
    # λ = 0 < s: linear (L = 1), exponential (L = 2), finite-time blow-up (L ≥ 3).
    s, u0 = 0.7, 0.2
    t_end = 0.9 * u0 ** (-(depth - 2) / depth) / ((depth - 2) * s) if depth >= 3 else 3.0
    t = np.linspace(0, t_end, 20)
    np.testing.assert_allclose(
        flow_component(t, s, 0.0, depth, u0), scalar_flow_reference(t, s, 0.0, depth, u0), 1e-9
    )
    if depth >= 3:
        assert flow_component(2 * t_end, s, 0.0, depth, u0) == np.inf


@pytest.mark.parametrize("depth", [3, 4, 5, 7])
@pytest.mark.parametrize(
    ("s", "lam", "u0", "u"),
    [
        (2.0, 1.0, 1e-9, 1.0),
        (2.0, 1.0, 1e-9, 1.99999),
        (1.0, 3.0, 5.0, 0.34),
        (0.3, 0.2, 0.1, 1.2),
        (1e-3, 1.0, 5.0, 0.5),  # far above the target: u/ρ = 500
        (0.5, 1.0, 5.0, 2.2),  # u/ρ = 4.4, where the series in ρ/u converges slowest
    ],
)
def test_flow_time_matches_log_quadrature(depth, s, lam, u0, u):
    assert flow_time(u, s, lam, depth, u0) == pytest.approx(
        log_quadrature_time(u, s, lam, depth, u0), rel=1e-10
    )


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_vanishing_s_tends_to_pure_decay(depth):
    t = np.array([0.1, 1.0, 10.0])
    decay = flow_component(t, 0.0, 1.3, depth, 2.0)
    for s in [1e-6, 1e-12, 1e-200]:
        u = flow_component(t, s, 1.3, depth, 2.0)
        assert np.all(np.abs(u / decay - 1) <= 10 * (s / 1.3) / decay + 1e-14)  # O(ρ/u)
        np.testing.assert_allclose(flow_time(u, s, 1.3, depth, 2.0), t, rtol=1e-10)


@settings(max_examples=150, deadline=None)
@given(
    depth=st.integers(1, 6),
    s=st.floats(0.05, 5.0),
    lam=st.floats(0.05, 5.0),
    log_u0=st.floats(-40.0, 3.0),
    t=st.floats(0.0, 200.0),
)
def test_flow_time_inverts_flow_component(depth, s, lam, log_u0, t):
    u0 = np.exp(log_u0)
    u = flow_component(t, s, lam, depth, u0)
    t_back = flow_time(u, s, lam, depth, u0)
    if np.isnan(t_back):  # only when u rounded to just behind u0
        assert u == pytest.approx(u0, rel=1e-14)
        return
    # Compare in u: t(u) is ill-conditioned on the plateaus, u(t) is not.
    assert flow_component(t_back, s, lam, depth, u0) == pytest.approx(u, rel=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_flow_time_domain(depth):
    s, lam, u0 = 1.5, 0.5, 0.01
    rho = s / lam
    t = flow_time([u0, 0.5 * rho, rho, 1.1 * rho, 0.5 * u0], s, lam, depth, u0)
    assert t[0] == 0 and 0 < t[1] < np.inf
    assert t[2] == np.inf
    assert np.isnan(t[3]) and np.isnan(t[4])  # beyond the target, behind the start


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_flow_component_broadcasts(depth):
    t = np.array([[0.0], [0.3], [2.0]])
    s, lam = np.array([0.5, 1.0, 2.0, 0.0]), np.array([1.0, 0.5, 2.0, 1.0])
    u = flow_component(t, s, lam, depth, 0.1)
    assert u.shape == (3, 4)
    loop = [
        [flow_component(ti, si, li, depth, 0.1) for si, li in zip(s, lam, strict=True)]
        for ti in t[:, 0]
    ]
    np.testing.assert_array_equal(u, np.array(loop))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_closed_forms_match_full_matrix_flow(depth):
    # Aligned init on a commuting problem: the product's coordinates U_iᵀ W V_i
    # follow the scalar flow exactly, and the off-diagonal ones stay 0.
    rng = np.random.default_rng(depth)
    lam = np.array([1.3, 0.9, 0.6, 1.1, 0.4])
    s = np.array([1.6, 1.0, 0.5])
    u, v, sigma_x, sigma_xy = commuting_moments(rng, 5, 4, lam, s)
    delta, r = 0.7, 3
    t = np.linspace(0, 2.5 * tau(max(depth, 2), delta) / s[-1], 12)
    w = flow_full(t, sigma_x, sigma_xy, aligned_layers(u, v, r, depth, delta))
    coords = np.einsum("di,tdp,pj->tij", u[:, :r], w, v[:, :r])
    expected = flow_component(t[:, None], s, lam[:r], depth, np.exp(-depth * delta))
    np.testing.assert_allclose(np.diagonal(coords, axis1=1, axis2=2), expected, rtol=1e-8)
    np.testing.assert_allclose(coords - coords * np.eye(r), 0, atol=1e-10)


def test_flow_linear_matches_full_flow_with_singular_sigma_x():
    rng = np.random.default_rng(7)
    n, d, p = 50, 5, 3
    x = rng.standard_normal((n, 3)) @ rng.standard_normal((3, d))  # rank 3 < d
    y = rng.standard_normal((n, p))
    sigma_x, sigma_xy = x.T @ x / n, x.T @ y / n
    w0 = rng.standard_normal((d, p))
    t = np.array([0.0, 0.1, 1.0, 5.0, 20.0])
    expected = flow_full(t, sigma_x, sigma_xy, [w0])
    w = flow_linear(t, sigma_x, sigma_xy, w0)
    np.testing.assert_allclose(w, expected, atol=1e-10)
    # Directions outside the data's span keep their initial value.
    null = np.linalg.svd(x)[2][3:].T
    np.testing.assert_allclose(null.T @ w[-1], null.T @ w0, atol=1e-12)
    # Late times reach the least-squares solution on the span.
    ls = np.linalg.pinv(sigma_x) @ sigma_xy
    proj = np.eye(d) - null @ null.T
    np.testing.assert_allclose(proj @ flow_linear(1e3, sigma_x, sigma_xy, w0), ls, atol=1e-10)


def test_flow_linear_without_data_span_drifts_linearly():
    # Σxy with a component in Σx's null space: the flow drifts at rate Σxy there.
    sigma_x, sigma_xy = np.diag([2.0, 0.0]), np.array([[1.0], [0.5]])
    w = flow_linear([0.0, 3.0], sigma_x, sigma_xy, np.zeros((2, 1)))
    np.testing.assert_allclose(w[1, :, 0], [0.5 * (1 - np.exp(-6.0)), 1.5], rtol=1e-14)


def test_theory_half_times_over_tau_depth_3():
    # THEORY §6 lists 0.4636, 0.4951, 0.4993, 0.4999 for L = 3, s = 2; these are the
    # numbers for λ = 1/2 (ρ = 4, half-time = time to reach u = 2 from u0 = e^{-3δ}).
    delta = np.array([2.0, 4.0, 6.0, 8.0])
    u0 = np.exp(-3 * delta)
    ratio = flow_time(2.0, 2.0, 0.5, 3, u0) / tau(3, delta)
    np.testing.assert_array_equal(np.round(ratio, 4), [0.4636, 0.4951, 0.4993, 0.4999])
    # With λ = 1 (ρ = 2) the half-time ratio tends to 1/s = 0.5 as well.
    ratio_lam1 = flow_time(1.0, 2.0, 1.0, 3, u0) / tau(3, delta)
    np.testing.assert_array_equal(np.round(ratio_lam1, 4), [0.4540, 0.4938, 0.4992, 0.4999])


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_transition_at_one_over_s_as_delta_grows(depth):
    s, lam = 2.0, 0.7
    deltas = np.array([2.0, 5.0, 10.0, 20.0]) / (1 if depth == 2 else depth)
    half = flow_time(0.5 * s / lam, s, lam, depth, np.exp(-depth * deltas))
    error = np.abs(half / tau(depth, deltas) - 1 / s)
    assert np.all(np.diff(error) < 0) and error[-1] < 0.02


def test_depth2_closed_form_is_theory_formula():
    s, lam, delta = 1.3, 0.6, 1.5
    t = np.linspace(0, 6, 13)
    theory = s * np.exp(2 * s * t) / (lam * (np.exp(2 * s * t) - 1) + s * np.exp(2 * delta))
    np.testing.assert_allclose(flow_component(t, s, lam, 2, np.exp(-2 * delta)), theory, 1e-13)
    # and it stays finite where e^{2st} overflows
    assert flow_component(1e4, s, lam, 2, np.exp(-2 * delta)) == pytest.approx(s / lam)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_flow_crossing_time(depth):
    s, lam = np.array([1.0, 2.0, 0.5]), np.array([0.5, 1.0, 2.0])
    u0 = np.array([0.01, 0.01, 0.2])  # the third starts above f·ρ = 0.125
    t = flow_crossing_time(0.5, s, lam, depth, u0)
    assert t[2] == 0
    np.testing.assert_allclose(t[:2], flow_time(0.5 * s[:2] / lam[:2], s[:2], lam[:2], depth, 0.01))
    np.testing.assert_allclose(flow_component(t, s, lam, depth, u0)[:2], 0.5 * s[:2] / lam[:2])
    assert np.all(np.isnan(flow_crossing_time([0.0, 1.0], 1.0, 1.0, depth, 0.01)))


def test_depth2_crossing_time_closed_form():
    s, lam, u0, f = 0.8, 0.4, 1e-5, 0.3
    y0 = s / lam / u0 - 1
    assert flow_crossing_time(f, s, lam, 2, u0) == pytest.approx(
        np.log(y0 * f / (1 - f)) / (2 * s), rel=1e-13
    )


def test_figure1_curves():
    s, lam, delta = np.array([3.0, 1.0]), np.array([1.0, 0.5]), 40.0
    rho = s / lam
    x = np.array([0.2, 0.5, 1.5])  # before both transitions, between, after
    nuclear, frob = figure1_curves(x, s, lam, 2, delta)
    np.testing.assert_allclose(nuclear, [0, rho[0], rho.sum()], atol=1e-6)
    np.testing.assert_allclose(frob, [0, rho[0] ** 2, (rho**2).sum()], atol=1e-6)
    # L = 1 shares the axis t/δ and is smooth: everything moves at once.
    nuclear1, frob1 = figure1_curves(x, s, lam, 1, delta)
    u1 = flow_component(delta * x[:, None], s, lam, 1, np.exp(-delta))
    np.testing.assert_allclose(nuclear1, np.abs(u1).sum(-1))
    np.testing.assert_allclose(frob1, (u1**2).sum(-1))
    assert np.all(nuclear1 > 0.99 * rho.sum())


@pytest.mark.parametrize("depth", [0, 2.5])
def test_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        flow_component(1.0, 1.0, 1.0, depth, 0.1)
