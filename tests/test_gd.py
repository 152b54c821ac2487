"""The fast GD kernel against the naive full-data loop (THEORY §1–2, §4)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import commuting_problem, product, random_problem, relative
from hypothesis import given
from hypothesis import strategies as st

from lindyn import theory
from lindyn.gd import EigenProblem, gd_batch, log_schedule, naive_gd
from lindyn.init import init_layers
from lindyn.stats import dataset_stats

STEPS = 40


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("init", ["aligned", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_equals_naive_full_data_loop(depth, init, seed):
    X, Y = random_problem(n=60, d=7, p=4, seed=seed)
    stats = dataset_stats(X, Y)
    layers0 = init_layers(stats, depth, width=3, delta=0.5, mode=init, seed=seed)
    eta = 0.1
    naive = naive_gd(X, Y, layers0, eta, STEPS)
    problem = EigenProblem.from_stats(stats)
    result = gd_batch(problem, [layers0], [eta], STEPS, log_schedule(STEPS), loss_target=None)
    assert result.status == ["max_steps"]
    for fast, slow in zip(result.final_layers[0], naive[-1], strict=True):
        assert relative(fast, slow) < 1e-10
    # u_i(t) = U_iᵀ W(t) V_i at every step
    for t in (0, 1, STEPS // 2, STEPS):
        W = product(naive[t])
        u_naive = np.einsum("ji,jk,ki->i", stats.U[:, :4], W, stats.V[:, :4])
        np.testing.assert_allclose(result.u[0, t], u_naive, rtol=1e-10, atol=1e-14)
        loss_naive = np.sum((Y - X @ W) ** 2) / (2 * 60)
        assert result.loss[0, t] == pytest.approx(loss_naive, rel=1e-10)


def test_batched_runs_equal_single_runs():
    X, Y = random_problem(n=50, d=6, p=3, seed=4)
    stats = dataset_stats(X, Y)
    problem = EigenProblem.from_stats(stats)
    runs = [
        (init_layers(stats, 2, 4, delta, mode, seed), eta)
        for delta, mode, seed, eta in [(1.0, "aligned", 0, 0.2), (2.0, "random", 3, 0.05)]
    ]
    steps = log_schedule(30)
    batch = gd_batch(problem, [r[0] for r in runs], [r[1] for r in runs], 30, steps, None)
    for j, (layers0, eta) in enumerate(runs):
        single = gd_batch(problem, [layers0], [eta], 30, steps, None)
        np.testing.assert_allclose(batch.u[j], single.u[0], rtol=1e-12)
        np.testing.assert_allclose(batch.singular_values[j], single.singular_values[0], rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_aligned_commuting_follows_scalar_recursion(depth):
    """ε = 0 and aligned init: each u_i follows THEORY §4's scalar GD recursion."""
    s = np.array([1.0, 0.6, 0.3])
    lam = np.array([0.9, 0.7, 0.5, 0.4])
    X, Y, _, _ = commuting_problem(s, lam, p=3, seed=2)
    stats = dataset_stats(X, Y)
    eta, delta, steps = 0.4, 1.5, 300
    layers0 = init_layers(stats, depth, 3, delta, "aligned")
    result = gd_batch(
        EigenProblem.from_stats(stats), [layers0], [eta], steps, log_schedule(steps), None
    )
    expected = theory.gd_component(stats.s, stats.lam, depth, eta, delta, steps)
    np.testing.assert_allclose(result.u[0], expected, rtol=1e-9, atol=1e-14)


def test_divergence_is_recorded_not_raised():
    X, Y = random_problem(n=40, d=5, p=2, seed=0)
    stats = dataset_stats(X, Y)
    layers0 = init_layers(stats, 2, 2, 0.0, "random", 0)
    eta = 50.0 / stats.mu[0]
    result = gd_batch(
        EigenProblem.from_stats(stats), [layers0], [eta], 500, log_schedule(500), None
    )
    assert result.status == ["diverged"]
    assert 0 < result.stop_step[0] < 500
    assert np.all(np.isnan(result.loss[0, result.stop_step[0] + 1 :]))


def test_linear_model_converges_to_least_squares():
    X, Y = random_problem(n=80, d=4, p=2, seed=3)
    stats = dataset_stats(X, Y)
    target = theory.rrr_loss(stats.sigma_x, stats.sigma_xy, stats.yy, 2)
    lstsq = np.linalg.lstsq(X, Y, rcond=None)[0]
    assert target == pytest.approx(np.sum((Y - X @ lstsq) ** 2) / 160, rel=1e-10)
    layers0 = init_layers(stats, 1, 2, 3.0, "random", 0)
    result = gd_batch(
        EigenProblem.from_stats(stats),
        [layers0],
        [1.0 / stats.mu[0]],
        20_000,
        log_schedule(20_000),
        target,
        tol=1e-10,
    )
    assert result.status == ["converged"]
    assert result.stop_step[0] < 20_000
    np.testing.assert_allclose(result.final_layers[0][0], lstsq, rtol=1e-4)


def test_directions_outside_the_data_span_are_frozen():
    """THEORY §2.3: rows with μ_j = 0 and zero Σ̃xy receive no gradient."""
    X, Y = random_problem(n=30, d=5, p=2, seed=1)
    X[:, 4] = 0.0
    stats = dataset_stats(X, Y)
    layers0 = init_layers(stats, 2, 3, 0.5, "random", 2)
    result = gd_batch(EigenProblem.from_stats(stats), [layers0], [0.2], 50, log_schedule(50), None)
    np.testing.assert_allclose(result.final_layers[0][0][4], layers0[0][4], rtol=1e-12)


@given(max_steps=st.integers(1, 10**6), density=st.integers(1, 50))
def test_log_schedule(max_steps, density):
    steps = log_schedule(max_steps, density)
    assert steps[0] == 0 and steps[-1] == max_steps
    assert np.all(np.diff(steps) > 0)
    # every decade above the first holds at least `density` distinct steps, or all of its steps
    for low in 10 ** np.arange(1, int(np.log10(max_steps))):
        in_decade = np.sum((steps >= low) & (steps < 10 * low))
        assert in_decade >= min(density, 9 * low) // 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_steps": 0}, "max_steps"), ({"per_decade": 0}, "log_density")],
)
def test_log_schedule_rejects_bad_arguments(kwargs, match):
    args = {"max_steps": 10, "per_decade": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        log_schedule(**args)
