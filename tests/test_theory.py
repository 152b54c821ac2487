"""Theory predictions (lindyn.theory) against exact simulation and brute force."""

from __future__ import annotations

import warnings
from functools import reduce

import numpy as np
import pytest
from helpers import commuting_moments
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from lindyn.flow import flow_crossing_time
from lindyn.theory import (
    crossing_bracket,
    decay_envelope,
    eigengap_condition,
    first_crossing,
    gd_component,
    loss,
    order_by_s_and_rrr,
    predicted_transition_step,
    rrr_loss,
    separation,
    tau,
    theorem3_envelopes,
    w_rrr,
    w_seq,
)

ROUNDING = 1e-12


def full_gd_products(sigma_x, sigma_xy, layers, eta, steps):
    """Plain matrix GD on the layers (THEORY §1); returns the products W(t)."""
    d, p = sigma_xy.shape
    products = []
    for _ in range(steps + 1):
        product = reduce(np.matmul, layers)
        products.append(product)
        grad = sigma_x @ product - sigma_xy
        layers = [
            w
            - eta
            * reduce(np.matmul, layers[:i], np.eye(d)).T
            @ grad
            @ reduce(np.matmul, layers[i + 1 :], np.eye(p)).T
            for i, w in enumerate(layers)
        ]
    return np.array(products)


def random_depth2_cases(rng, n, x_min=0.01):
    """(s, λ, δ, ρ) with η = 1, ηs in [x_min, 1/2] and u0 = e^{-2δ} < ρ."""
    s = rng.uniform(x_min, 0.5, n)
    rho = np.exp(rng.uniform(-2, 2, n))
    delta = rng.uniform(np.maximum(0.0, -np.log(rho) / 2) + 0.05, 5.0, n)
    return s, s / rho, delta, rho


# ----------------------------------------------------------------------- §4, §6


def test_tau_values_and_broadcasting():
    assert tau(2, 3.0) == 3.0
    assert tau(3, 2.0) == pytest.approx(np.exp(2.0))
    assert tau(4, 1.5) == pytest.approx(np.exp(3.0) / 2)
    assert np.isnan(tau(1, 2.0))
    grid = tau(np.array([[1], [2], [3], [5]]), np.array([0.5, 1.0]))
    assert grid.shape == (4, 2)
    np.testing.assert_allclose(grid[1:], [[0.5, 1.0], np.exp([0.5, 1.0]), np.exp([1.5, 3.0]) / 3])


def test_predicted_transition_step():
    steps = predicted_transition_step([2, 3, 1, 2], 4.0, 0.01, [2.0, 2.0, 2.0, 0.0])
    np.testing.assert_allclose(steps[:2], [4.0 / 0.02, np.exp(4.0) / 0.02])
    assert np.isnan(steps[2]) and np.isnan(steps[3])


def test_gd_component_depth2_recursion():
    s, lam, eta, delta = np.array([1.0, 0.3, 2.0]), np.array([0.5, 1.0, 4.0]), 0.1, 1.2
    u = gd_component(s, lam, 2, eta, delta, 300)
    assert u.shape == (301, 3)
    expected = [np.full(3, np.exp(-2 * delta))]
    for _ in range(300):
        expected.append(expected[-1] * (1 + eta * (s - lam * expected[-1])) ** 2)
    np.testing.assert_allclose(u, np.array(expected), rtol=1e-13)


def test_gd_component_depth1_closed_form():
    # THEORY §5: u(t) = (1 - ηλ)^t u0 + (1 - (1 - ηλ)^t) ρ.
    s, lam, eta, delta = 0.8, 1.6, 0.05, 0.4
    t = np.arange(201)
    decay = (1 - eta * lam) ** t
    expected = decay * np.exp(-delta) + (1 - decay) * s / lam
    np.testing.assert_allclose(gd_component(s, lam, 1, eta, delta, 200), expected, rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_gd_component_matches_full_matrix_gd(depth):
    # Aligned init on a commuting problem: the product's coordinates follow the scalar GD.
    rng = np.random.default_rng(10 + depth)
    lam, s = np.array([1.2, 0.7, 0.9, 0.5]), np.array([1.5, 0.8, 0.4])
    u, v, sigma_x, sigma_xy = commuting_moments(rng, 4, 3, lam, s)
    delta, eta, r, steps = 0.5, 0.2, 3, 150
    a0 = np.exp(-delta)
    if depth == 1:
        layers = [a0 * u[:, :r] @ v[:, :r].T]
    else:
        layers = [a0 * u[:, :r], *[a0 * np.eye(r)] * (depth - 2), a0 * v[:, :r].T]
    products = full_gd_products(sigma_x, sigma_xy, layers, eta, steps)
    coords = np.einsum("di,tdp,pi->ti", u[:, :r], products, v[:, :r])
    np.testing.assert_allclose(coords, gd_component(s, lam[:r], depth, eta, delta, steps), 1e-10)


def test_gd_component_broadcasts_and_survives_divergence():
    u = gd_component([1.0, 2.0, 3.0], 1.0, np.array([[2], [3]]), 1.5, [[0.1], [0.2]], 50)
    assert u.shape == (51, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diverged = gd_component(5.0, 1.0, 2, 1.0, 0.1, 100)
    assert not np.all(np.isfinite(diverged))


# --------------------------------------------------------------------------- §7


def test_theorem3_envelopes_never_violated_on_a_grid():
    rng = np.random.default_rng(0)
    s, lam, delta, rho = random_depth2_cases(rng, 1500)
    u = gd_component(s, lam, 2, 1.0, delta, 1500)
    t = np.arange(u.shape[0])[:, None]
    lower, upper = theorem3_envelopes(t, s, lam, np.exp(-2 * delta), 1.0)
    assert not np.isnan(lower).any()
    assert np.all(lower <= u * (1 + ROUNDING))
    assert np.all(u <= upper * (1 + ROUNDING))
    assert np.all(np.abs(u[-1] / rho - 1) < 1e-6)  # the runs reached the target


@settings(max_examples=60, deadline=None)
@given(
    eta_s=st.floats(0.02, 0.5),
    log_rho=st.floats(-3.0, 3.0),
    delta=st.floats(0.0, 8.0),
    eta=st.sampled_from([0.01, 0.3, 1.0]),
)
def test_theorem3_envelopes_property(eta_s, log_rho, delta, eta):
    rho = np.exp(log_rho)
    s = eta_s / eta
    u0 = np.exp(-2 * delta)
    if u0 >= rho:
        return
    steps = int(np.ceil((2 * delta + abs(log_rho) + 30) / eta_s))
    u = gd_component(s, s / rho, 2, eta, delta, steps)
    lower, upper = theorem3_envelopes(np.arange(steps + 1), s, s / rho, u0, eta)
    assert np.all(lower <= u * (1 + ROUNDING))
    assert np.all(u <= upper * (1 + ROUNDING))
    # "u increases and stays below ρ" (at ηs = 1/2 up to rounding next to ρ)
    assert np.all(np.diff(u) >= -ROUNDING * rho) and np.all(u <= rho * (1 + ROUNDING))


def test_theorem3_both_rates_are_attained():
    rng = np.random.default_rng(1)
    s, lam, _, rho = random_depth2_cases(rng, 300, x_min=0.02)
    u = gd_component(s, lam, 2, 1.0, 10.0, 1500)  # tiny init: a long early phase
    assert np.all(u[-1] == pytest.approx(rho, rel=1e-9))
    # The theorem holds from any state, so apply it one step at a time along the
    # whole trajectory (NaN once u has rounded to ρ, where it no longer applies).
    lower, upper = theorem3_envelopes(1, s, lam, u[:-1], 1.0)
    valid = ~np.isnan(lower)
    assert valid[:20].all()
    assert np.all(lower[valid] <= u[1:][valid] * (1 + ROUNDING))
    assert np.all(u[1:][valid] <= upper[valid] * (1 + ROUNDING))
    # Per-step contraction of y = ρ/u - 1: (1+ηs)^{-2} while u is small, 1 - 2ηs near ρ.
    y = rho / u - 1
    with np.errstate(invalid="ignore"):  # 0/0 once u has rounded to ρ
        contraction = y[1:] / y[:-1]
    np.testing.assert_allclose(contraction[0], (1 + s) ** -2, rtol=1e-7)
    late = np.argmax(y < 1e-6, axis=0)
    np.testing.assert_allclose(contraction[late, np.arange(len(s))], 1 - 2 * s, atol=1e-5)
    # Hence either rate tightened by 1 % is violated in every case.
    kappa = 0.01
    assert np.all(np.any(contraction > (1 + s) ** (-2 * (1 + kappa)), axis=0))
    assert np.all(np.any(valid & (contraction < 1 - 2 * s * (1 - kappa)), axis=0))


def test_theorem3_envelopes_domain():
    # valid; then s = 0, λ = 0, u0 = 0, u0 ≥ ρ, ηs > 1/2, η = 0, t < 0
    t = [3, 3, 3, 3, 3, 3, 3, -1]
    s = [1.0, 0.0, 1.0, 1.0, 1.0, 0.6, 1.0, 1.0]
    lam = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    u0 = [0.1, 0.1, 0.1, 0.0, 2.0, 0.1, 0.1, 0.1]
    eta = [0.2, 0.2, 0.2, 0.2, 0.2, 1.0, 0.0, 0.2]
    lower, upper = theorem3_envelopes(t, s, lam, u0, eta)
    assert 0.1 < lower[0] < upper[0] < 1.0
    assert np.all(np.isnan(lower[1:])) and np.all(np.isnan(upper[1:]))


def test_theorem3_envelopes_extreme_arguments_do_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lower, upper = theorem3_envelopes([0, 1e9], 1.0, 1.0, 1e-300, 0.25)
    assert lower[0] == pytest.approx(1e-300) and upper[0] == pytest.approx(1e-300)
    assert lower[1] == 1.0 and upper[1] == 1.0
    # ηs = 1/2: the upper rate is 0, the upper envelope is ρ from step 1.
    _, upper_half = theorem3_envelopes([0, 1, 2], 0.5, 1.0, 0.01, 1.0)
    np.testing.assert_allclose(upper_half, [0.01, 0.5, 0.5])


def test_decay_envelope_for_s_zero():
    lam = np.array([0.5, 1.0, 2.0])
    delta = np.array([0.0, 0.5, 1.0])
    eta = 0.4
    u = gd_component(0.0, lam, 2, eta, delta, 20000)
    t = np.arange(u.shape[0])[:, None]
    u0 = np.exp(-2 * delta)
    bound = decay_envelope(t, lam, u0, eta)
    assert np.all(u <= bound * (1 + ROUNDING))
    assert np.all(u[-1] / bound[-1] > 0.99)  # tight as t grows
    faster = u0 / (1 + 2.1 * eta * lam * u0 * t)
    assert np.all(np.any(u > faster, axis=0))
    assert np.isnan(decay_envelope(1, 3.0, 1.0, 0.5))  # ηλu0 > 1


def test_crossing_bracket_contains_exact_first_crossing():
    rng = np.random.default_rng(2)
    n = 400
    s, lam, delta, rho = random_depth2_cases(rng, n)
    f = rng.uniform(0.01, 0.99, n)
    eta = rng.choice([0.1, 1.0], n)
    s = s / eta  # keep ηs in [0.01, 1/2]
    lam = s / rho
    u0 = np.exp(-2 * delta)
    u = gd_component(s, lam, 2, eta, delta, 1500)
    crossing = first_crossing(u, f * rho, 1.0)
    t_minus, t_plus = crossing_bracket(s, lam, u0, eta, f)
    assert np.all(crossing >= 0)
    assert np.all((np.ceil(t_minus) <= crossing) & (crossing <= t_plus))
    assert np.any(crossing == 0) and np.all(t_plus[crossing == 0] == 0)
    # The gradient-flow crossing time, in steps, lies inside the bracket as well.
    flow_steps = flow_crossing_time(f, s, lam, 2, u0) / eta
    assert np.all((t_minus <= flow_steps) & (flow_steps <= t_plus))


@pytest.mark.parametrize("eta_s", [1e-3, 3e-3, 1e-2, 3e-2])
def test_crossing_bracket_ratio_is_about_one_plus_one_and_half_eta_s(eta_s):
    t_minus, t_plus = crossing_bracket(eta_s, eta_s, np.exp(-40.0), 1.0, 0.5)
    assert t_plus / t_minus == pytest.approx(1 + 1.5 * eta_s, abs=2 * eta_s**2 + 2 / t_minus)


def test_crossing_bracket_domain():
    # u0 ≥ fρ; then f = 1, s = 0, ηs > 1/2; then ηs = 1/2 (lower bound degenerates)
    s = [1.0, 1.0, 0.0, 1.2, 1.0]
    u0 = [0.6, 0.01, 0.01, 0.01, 0.01]
    f = [0.5, 1.0, 0.5, 0.5, 0.5]
    t_minus, t_plus = crossing_bracket(s, 1.0, u0, 0.5, f)
    assert t_minus[0] == 0 and t_plus[0] == 0
    assert np.all(np.isnan(t_minus[1:4])) and np.all(np.isnan(t_plus[1:4]))
    assert t_minus[4] == 0 and t_plus[4] == np.ceil(np.log(99.0) / (2 * np.log(1.5)))


def test_first_crossing():
    u = np.array([[0.0, 0.1], [0.3, np.nan], [0.6, 0.2], [0.9, np.inf], [1.0, 0.3]])
    crossing = first_crossing(u, [1.0, 0.5], np.array([0.25, 0.5, 0.95, 2.0]))
    assert crossing.shape == (4, 2)
    np.testing.assert_array_equal(crossing, [[1, 2], [2, 3], [4, 3], [-1, 3]])
    np.testing.assert_array_equal(first_crossing(u.T, [1.0, 0.5], 0.5, axis=1), [2, 3])
    never = first_crossing(np.full((3, 2), np.nan), 1.0, 0.5)
    np.testing.assert_array_equal(never, [-1, -1])


def test_separation_is_confirmed_by_simulation():
    rng = np.random.default_rng(3)
    n = 400
    s1 = rng.uniform(0.02, 0.4, n)
    s = np.stack([s1, s1 * rng.uniform(0.3, 0.99, n)], axis=-1)
    lam = s / np.exp(rng.uniform(-1, 1, (n, 2)))
    delta = rng.uniform(2.0, 6.0, (n, 1))
    f = 0.2
    separated = separation(s, lam, np.exp(-2 * delta), 1.0, f)[:, 0]
    assert 50 < separated.sum() < n - 50
    u = gd_component(s, lam, 2, 1.0, delta, 2500)
    rho = s / lam
    first_learned = first_crossing(u[..., 0], (1 - f) * rho[:, 0], 1.0)
    second_started = first_crossing(u[..., 1], f * rho[:, 1], 1.0)
    assert np.all(first_learned[separated] < second_started[separated])


@pytest.mark.parametrize(("gap_factor", "expected"), [(2.0, True), (0.5, False)])
def test_eigengap_condition_is_the_asymptotic_separation(gap_factor, expected):
    eta_s = 0.01
    s = np.array([eta_s, eta_s * (1 - gap_factor * 1.5 * eta_s)])
    ok, margin = eigengap_condition(s, 1.0)
    assert ok[0] == expected
    assert margin[0] == pytest.approx((gap_factor - 1) * 1.5 * eta_s)
    # Vanishing initialisation (δ = 200) and f near 1/2: Corollary 3 agrees.
    assert separation(s, s, np.exp(-400.0), 1.0, 0.45)[0] == expected


# --------------------------------------------------------------------------- §8


def brute_force_rank_k_loss(sigma_x, sigma_xy, k, rng, restarts=25):
    d, p = sigma_xy.shape

    def objective(z):
        a, b = z[: d * k].reshape(d, k), z[d * k :].reshape(k, p)
        grad = sigma_x @ a @ b - sigma_xy
        value = loss(a @ b, sigma_x, sigma_xy, 0.0)
        return value, np.concatenate([(grad @ b.T).ravel(), (a.T @ grad).ravel()])

    results = [
        minimize(
            objective,
            rng.standard_normal(d * k + k * p),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-10},
        ).fun
        for _ in range(restarts)
    ]
    return np.array(results)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("singular", [False, True])
def test_w_rrr_is_the_rank_k_minimiser(k, singular):
    rng = np.random.default_rng(4 + k + 10 * singular)
    n, d, p = 40, 4, 3
    x = rng.standard_normal((n, d))
    if singular:
        x[:, 3] = x[:, 0] - x[:, 1]
    y = x @ rng.standard_normal((d, p)) + 0.5 * rng.standard_normal((n, p))
    sigma_x, sigma_xy, yy = x.T @ x / n, x.T @ y / n, np.sum(y**2) / n
    w = w_rrr(sigma_x, sigma_xy, k)
    assert np.linalg.matrix_rank(w, tol=1e-10) == k
    best = rrr_loss(sigma_x, sigma_xy, yy, k)
    found = brute_force_rank_k_loss(sigma_x, sigma_xy, k, rng) + 0.5 * yy
    assert np.all(best <= found + 1e-9)
    assert best == pytest.approx(found.min(), abs=1e-6)
    # The data form of the loss, ‖Y - XW‖²/(2n), agrees.
    assert best == pytest.approx(np.sum((y - x @ w) ** 2) / (2 * n), rel=1e-12)


def test_loss_stacks():
    rng = np.random.default_rng(5)
    sigma_x, sigma_xy = np.eye(3) * 2.0, rng.standard_normal((3, 2))
    ws = rng.standard_normal((4, 3, 2))
    looped = [loss(w, sigma_x, sigma_xy, 1.0) for w in ws]
    np.testing.assert_allclose(loss(ws, sigma_x, sigma_xy, 1.0), looped)
    assert loss(np.zeros((3, 2)), sigma_x, sigma_xy, 3.0) == 1.5


def test_w_seq_equals_w_rrr_when_orders_agree():
    rng = np.random.default_rng(6)
    lam = np.array([1.0, 1.2, 0.8, 0.7, 1.5])
    s = np.array([3.0, 2.0, 1.0])  # s²/λ = 9, 3.3, 1.25: same order as s
    u, v, sigma_x, sigma_xy = commuting_moments(rng, 5, 4, lam, s)
    assert order_by_s_and_rrr(s, lam[:3])[2].all()
    for k in range(1, 4):
        np.testing.assert_allclose(
            w_seq(u, v, s / lam[:3], k), w_rrr(sigma_x, sigma_xy, k), atol=1e-12
        )


@pytest.mark.parametrize(
    ("s", "lam", "k_disagree"),
    [
        ([1.0, 0.5], [2.0, 0.4], 1),  # THEORY §8's pair on its own
        ([3.0, 2.0, 1.0, 0.5], [1.0, 1.0, 2.0, 0.4], 3),  # behind two stronger components
    ],
)
def test_w_seq_differs_from_w_rrr_when_orders_disagree(s, lam, k_disagree):
    s, lam = np.array(s), np.array(lam)
    rng = np.random.default_rng(7)
    d, n = 5, len(s)
    lam_full = np.concatenate([lam, np.ones(d - n)])
    u, v, sigma_x, sigma_xy = commuting_moments(rng, d, n, lam_full, s)
    rho = s / lam
    order_s, order_rrr, agree = order_by_s_and_rrr(s, lam)
    np.testing.assert_array_equal(order_s, np.arange(n))
    np.testing.assert_array_equal(agree, np.arange(1, n + 1) != k_disagree)
    # Gradient descent learns component k-1 (larger s) before component k ...
    traj = gd_component(s, lam, 2, 0.05, 4.0, 4000)
    crossing = first_crossing(traj, rho, 0.5)
    assert np.all(crossing >= 0) and np.all(np.diff(crossing) > 0)
    # ... so W^seq keeps it, while RRR keeps the larger s²/λ instead.
    w_s, w_r = w_seq(u, v, rho, k_disagree), w_rrr(sigma_x, sigma_xy, k_disagree)
    kept = order_rrr[:k_disagree]
    assert k_disagree - 1 not in kept and k_disagree in kept  # the later-learned one
    expected = np.zeros(n)
    expected[kept] = rho[kept]
    np.testing.assert_allclose(np.einsum("di,dp,pi->i", u[:, :n], w_r, v), expected, atol=1e-12)
    assert np.linalg.norm(w_s - w_r) > 0.5
    assert rrr_loss(sigma_x, sigma_xy, 0.0, k_disagree) < loss(w_s, sigma_x, sigma_xy, 0.0) - 0.01
    for k in np.flatnonzero(agree) + 1:
        np.testing.assert_allclose(w_seq(u, v, rho, k), w_rrr(sigma_x, sigma_xy, k), atol=1e-12)


def test_order_by_s_and_rrr_against_sets():
    rng = np.random.default_rng(8)
    s = np.sort(rng.uniform(0.1, 2, (50, 6)))[:, ::-1]
    lam = rng.uniform(0.2, 2, (50, 6))
    order_s, _, agree = order_by_s_and_rrr(s, lam)
    for row in range(50):
        for k in range(1, 7):
            same = set(order_s[row, :k]) == set(np.argsort(-(s[row] ** 2 / lam[row]))[:k])
            assert agree[row, k - 1] == same
    np.testing.assert_array_equal(order_s, np.broadcast_to(np.arange(6), (50, 6)))
    assert agree[:, -1].all() and not agree.all()
