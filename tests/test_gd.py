"""lindyn.gd (working-basis problem, log schedule) and the GD dynamics of the engines
and sweeps against THEORY: the scalar recursion (§4), least squares, divergence.

Step-by-step exactness against the naive full-data loop is tests/test_sweep.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import commuting_problem, product, random_problem
from hypothesis import given
from hypothesis import strategies as st

from lindyn import theory
from lindyn.engines import make_engine
from lindyn.gd import DIVERGENCE_FACTOR, EigenProblem, log_schedule, naive_gd
from lindyn.init import init_layers
from lindyn.stats import dataset_stats
from lindyn.sweeps import simulate


@pytest.fixture(params=["numpy", "numba"])
def kernel(request) -> str:
    """Each engine in turn (the compiled one only where numba is installed)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    return request.param


def test_eigen_problem_loss_is_the_data_loss():
    X, Y = random_problem(n=50, d=6, p=3, seed=4)
    stats = dataset_stats(X, Y)
    problem = EigenProblem.from_stats(stats)
    W = np.stack([product(init_layers(stats, 2, 4, 0.3, "random", i)) for i in range(3)])
    data_loss = np.sum((Y - X @ W) ** 2, axis=(1, 2)) / (2 * 50)
    np.testing.assert_allclose(problem.loss(stats.Q.T @ W), data_loss, rtol=1e-12)


def test_naive_gd_returns_every_step():
    X, Y = random_problem(n=30, d=4, p=2, seed=0)
    stats = dataset_stats(X, Y)
    layers0 = init_layers(stats, 3, 2, 0.5, "random", 1)
    history = naive_gd(X, Y, layers0, 0.1, 5)
    assert len(history) == 6
    for a, b in zip(history[0], layers0, strict=True):
        np.testing.assert_array_equal(a, b)
    # a step is one plain gradient step of the first layer: W_1 − η Xᵀ(XW − Y)/n (W_2 W_3)ᵀ
    W = product(layers0)
    grad = X.T @ (X @ W - Y) / 30 @ (layers0[1] @ layers0[2]).T
    np.testing.assert_allclose(history[1][0], layers0[0] - 0.1 * grad, rtol=1e-13)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_aligned_commuting_follows_scalar_recursion(kernel, depth):
    """ε = 0 and aligned init: each u_i follows THEORY §4's scalar GD recursion."""
    s = np.array([1.0, 0.6, 0.3])
    lam = np.array([0.9, 0.7, 0.5, 0.4])
    X, Y, _, _ = commuting_problem(s, lam, p=3, seed=2)
    stats = dataset_stats(X, Y)
    eta, delta, steps = 0.4, 1.5, 300
    layers0 = init_layers(stats, depth, 3, delta, "aligned")
    engine = make_engine(EigenProblem.from_stats(stats), [layers0], [eta], kernel)
    _, u = engine.advance(steps)
    u = np.vstack([u[0], engine.observe()[1]])
    expected = theory.gd_component(stats.s, stats.lam, depth, eta, delta, steps)
    np.testing.assert_allclose(u, expected, rtol=1e-9, atol=1e-14)


def test_divergence_is_recorded_not_raised(kernel):
    X, Y = random_problem(n=40, d=5, p=2, seed=0)
    stats = dataset_stats(X, Y)
    eta = 50.0 / stats.mu[0]
    with warnings.catch_warnings():  # no RuntimeWarning (overflow) escapes either
        warnings.simplefilter("error")
        run = simulate(stats, 2, eta, 0.0, init="random", width=2, max_steps=500, kernel=kernel)
    assert run["status"] == "diverged"
    stop = int(run["stop_step"])
    assert 0 < stop < 500
    steps = run["step"].values
    assert np.all(np.isnan(run["loss"].values[steps > stop]))
    assert np.all(np.isnan(run["u"].values[steps > stop]))
    # the stop is the first step whose loss is not finite or beyond the blow-up scale
    loss0 = float(run["loss"].sel(step=0))
    blowup = DIVERGENCE_FACTOR * max(loss0, stats.yy, 1.0)
    assert np.all(run["loss"].values[steps < stop] <= blowup)
    final = float(run["loss_final"])
    assert not np.isfinite(final) or final > blowup
    # Theorem 3 says nothing of a diverging run
    assert np.all(np.isnan(run["bound_violation"]))


def test_linear_model_converges_to_least_squares(kernel):
    X, Y = random_problem(n=80, d=4, p=2, seed=3)
    stats = dataset_stats(X, Y)
    target = theory.rrr_loss(stats.sigma_x, stats.sigma_xy, stats.yy, 2)
    lstsq = np.linalg.lstsq(X, Y, rcond=None)[0]
    assert target == pytest.approx(np.sum((Y - X @ lstsq) ** 2) / 160, rel=1e-10)
    eta = 1.0 / stats.mu[0]
    run = simulate(stats, 1, eta, 3.0, init="random", max_steps=20_000, tol=1e-10, kernel=kernel)
    assert run["status"] == "converged"
    stop = int(run["stop_step"])
    assert stop < 20_000
    assert float(run["loss_target"]) == pytest.approx(target, rel=1e-12)
    initial = float(run["loss"].sel(step=0))
    assert 0 <= float(run["loss_final"]) - target <= 1e-10 * (initial - target)
    # the iterate at the stop step is the least-squares solution
    engine = make_engine(
        EigenProblem.from_stats(stats), [init_layers(stats, 1, 2, 3.0, "random")], [eta], kernel
    )
    engine.advance(stop)
    np.testing.assert_allclose(stats.Q @ engine.products()[0], lstsq, rtol=1e-4)
    u = np.einsum("ji,jk,ki->i", stats.U[:, :2], lstsq, stats.V[:, :2])
    np.testing.assert_allclose(run["u_final"], u, rtol=1e-4)


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
