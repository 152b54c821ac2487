"""The compiled engine (lindyn.fastgd) against the full-data loop and the numpy engine."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import product, random_problem, relative
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from lindyn.engines import NumpyEngine
from lindyn.fastgd import LANES, Sweep, fast_sweep
from lindyn.gd import EigenProblem, naive_gd
from lindyn.init import init_layers
from lindyn.stats import dataset_stats

STEPS = 40


def _sweep_runs(stats, depth, width, init, count=3):
    """``count`` runs of one init mode with different δ, seeds and step sizes."""
    runs = [
        init_layers(stats, depth, width, delta=0.3 + 0.2 * i, mode=init, seed=i)
        for i in range(count)
    ]
    return runs, [0.1, 0.05, 0.08][:count]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("init", ["aligned", "random"])
def test_sweep_equals_naive_full_data_loop(depth, init):
    X, Y = random_problem(n=60, d=7, p=4, seed=depth)
    n = X.shape[0]
    stats = dataset_stats(X, Y)
    runs, etas = _sweep_runs(stats, depth, 3, init)
    result = fast_sweep(EigenProblem.from_stats(stats), runs, etas, STEPS)
    assert result.loss.shape == (3, STEPS + 1)
    assert result.u.shape == (3, STEPS + 1, 4)
    for j, (layers0, eta) in enumerate(zip(runs, etas, strict=True)):
        naive = naive_gd(X, Y, layers0, eta, STEPS)
        for fast, slow in zip(result.layers[j], naive[-1], strict=True):
            assert fast.shape == slow.shape
            assert relative(fast, slow) < 1e-10
        for t in (0, 1, STEPS // 2, STEPS):
            W = product(naive[t])
            u = np.einsum("ji,jk,ki->i", stats.U[:, :4], W, stats.V[:, :4])
            np.testing.assert_allclose(result.u[j, t], u, rtol=1e-10, atol=1e-13)
            loss = np.sum((Y - X @ W) ** 2) / (2 * n)
            assert result.loss[j, t] == pytest.approx(loss, rel=1e-10)


@given(
    depth=st.integers(1, 4),
    d=st.integers(1, 9),
    p=st.integers(1, 5),
    width=st.integers(1, 5),
    runs=st.integers(1, 2 * LANES + 1),
    components=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=25, deadline=None)
def test_every_step_equals_numpy_engine(depth, d, p, width, runs, components, seed):
    """Any shape (padding of d, p and of the last group), fewer components than outputs."""
    X, Y = random_problem(n=40, d=d, p=p, seed=seed)
    stats = dataset_stats(X, Y)
    problem = EigenProblem.from_stats(stats, components)
    layers0 = [
        init_layers(stats, depth, width, 0.5, ("aligned", "random")[i % 2], seed + i)
        for i in range(runs)
    ]
    etas = np.linspace(0.01, 0.05, runs)
    steps = 25
    fast = fast_sweep(problem, layers0, etas, steps)
    slow = NumpyEngine(problem, layers0, etas)
    loss, u = slow.advance(steps)
    last_loss, last_u = slow.observe()
    loss = np.concatenate([loss, last_loss[:, None]], axis=1)
    u = np.concatenate([u, last_u[:, None]], axis=1)
    scale = max(np.max(np.abs(u)), 1e-300)
    assert np.max(np.abs(fast.u - u)) <= 1e-11 * scale
    np.testing.assert_allclose(fast.loss, loss, rtol=1e-9, atol=1e-12)
    for fast_layers, W in zip(fast.layers, slow.products(), strict=True):
        W_fast = problem.Q.T @ product(fast_layers)
        np.testing.assert_allclose(W_fast, W, rtol=0, atol=1e-11 * max(np.abs(W).max(), 1))


def _problem_and_runs(depth, count, seed=0):
    X, Y = random_problem(n=50, d=9, p=5, seed=seed)
    stats = dataset_stats(X, Y)
    runs = [init_layers(stats, depth, 4, 0.5, "random", seed + i) for i in range(count)]
    return EigenProblem.from_stats(stats), runs


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_runs_are_independent_lanes(depth):
    """A run's iterates do not depend on which other runs share its group."""
    problem, runs = _problem_and_runs(depth, LANES + 3)
    etas = np.linspace(0.05, 0.15, len(runs))
    together = fast_sweep(problem, runs, etas, 30)
    alone = fast_sweep(problem, runs[4:5], etas[4:5], 30)
    np.testing.assert_array_equal(together.u[4], alone.u[0])
    np.testing.assert_array_equal(together.loss[4], alone.loss[0])
    for a, b in zip(together.layers[4], alone.layers[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_diverging_run_leaves_the_others_alone():
    problem, runs = _problem_and_runs(2, 3)
    etas = [0.1, 1e3, 0.05]
    with np.errstate(all="ignore"):
        result = fast_sweep(problem, runs, etas, 60)
    assert not np.isfinite(result.loss[1, -1])
    for j in (0, 2):
        alone = fast_sweep(problem, runs[j : j + 1], etas[j : j + 1], 60)
        assert np.all(np.isfinite(result.loss[j]))
        np.testing.assert_array_equal(result.u[j], alone.u[0])


def test_advance_in_blocks_equals_one_call():
    problem, runs = _problem_and_runs(3, 5)
    etas = [0.1] * 5
    once = Sweep(problem, runs, etas)
    loss, u = once.advance(30)
    blocks = Sweep(problem, runs, etas)
    parts = [blocks.advance(n) for n in (7, 0, 23)]
    assert blocks.step == once.step == 30
    np.testing.assert_array_equal(np.concatenate([part[0] for part in parts], axis=1), loss)
    np.testing.assert_array_equal(np.concatenate([part[1] for part in parts], axis=1), u)
    np.testing.assert_array_equal(blocks.products(), once.products())


def test_products_are_in_the_working_basis():
    X, Y = random_problem(n=50, d=6, p=3, seed=2)
    stats = dataset_stats(X, Y)
    problem = EigenProblem.from_stats(stats)
    layers0 = init_layers(stats, 2, 3, 0.5, "random", 0)
    sweep = Sweep(problem, [layers0], [0.1])
    sweep.advance(10)
    W = product(naive_gd(X, Y, layers0, 0.1, 10)[-1])
    assert relative(sweep.products()[0], stats.Q.T @ W) < 1e-12
    loss, u = sweep.observe()
    assert loss[0] == pytest.approx(np.sum((Y - X @ W) ** 2) / (2 * 50), rel=1e-12)
    np.testing.assert_allclose(u[0], np.einsum("ji,jk,ki->i", stats.U[:, :3], W, stats.V))


def test_invalid_sweeps_are_rejected():
    problem, runs = _problem_and_runs(2, 2)
    with pytest.raises(ValueError, match="one step size per run"):
        Sweep(problem, runs, [0.1])
    with pytest.raises(ValueError, match="same number of layers"):
        Sweep(problem, [runs[0], runs[1][:1]], [0.1, 0.1])
    with pytest.raises(ValueError, match="not a network"):
        Sweep(problem, [[runs[0][0], runs[0][1][:, :2]]], [0.1])
    with pytest.raises(ValueError, match="at least one run"):
        Sweep(problem, [], [])
    with pytest.raises(ValueError, match="steps"):
        Sweep(problem, runs, [0.1, 0.1]).advance(-1)
