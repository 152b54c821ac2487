"""The exactness guarantee: every fast path gives the iterates of the naive full-data loop.

:func:`lindyn.gd.naive_gd` is plain GD on ``X, Y`` in the original basis, every
layer, every step. Against it, on random (non-commuting) problems:

* both engines (:class:`lindyn.engines.NumpyEngine`, the compiled
  :class:`lindyn.fastgd.Sweep`): per-step loss and ``u``, and the products, to
  1e-10 relative in float64;
* ``subset``: advancing the kept runs alone is advancing all and selecting, bit for bit;
* :func:`lindyn.sweeps.sweep`: a cell's results do not depend on the rest of its
  sweep (bit for bit), the two kernels agree, and the stopping rules, exact
  crossing steps and Theorem 3 violations are those of the naive trajectory;
  so with per-cell budgets from the theory and the crossings stop.
"""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import commuting_problem, product, random_problem, relative
from hypothesis import given, settings
from hypothesis import strategies as st

from lindyn import theory
from lindyn.engines import make_engine
from lindyn.gd import DIVERGENCE_FACTOR, EigenProblem, log_schedule, naive_gd
from lindyn.init import init_layers
from lindyn.regime import step_budget
from lindyn.runs import FRACTIONS
from lindyn.stats import dataset_stats
from lindyn.sweeps import simulate, sweep

RTOL = 1e-10  # "same iterates" in float64
STEPS = 40
ETAS = (0.02, 0.1, 0.25)  # one run of each step size per engine
LANES = 8  # runs per SIMD group of the compiled engine (lindyn.fastgd.LANES)


def _have_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


KERNELS = ["numpy", "numba"] if _have_numba() else ["numpy"]


@pytest.fixture(params=["numpy", "numba"])
def kernel(request) -> str:
    """Each engine in turn (the compiled one only where numba is installed)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    return request.param


def _problem(n: int, d: int, p: int, seed: int, components: int | None = None):
    X, Y = random_problem(n=n, d=d, p=p, seed=seed)
    stats = dataset_stats(X, Y)
    return SimpleNamespace(
        X=X, Y=Y, stats=stats, problem=EigenProblem.from_stats(stats, components)
    )


@pytest.fixture(params=[(7, 4, 0), (5, 6, 1)], ids=["d7-p4", "d5-p6"])
def data(request) -> SimpleNamespace:
    """A random problem with ``d > p`` or ``d < p`` (``min(d, p)`` is 4 or 5)."""
    d, p, seed = request.param
    return _problem(60, d, p, seed)


def naive_trajectory(data: SimpleNamespace, layers0, eta: float, steps: int):
    """The naive loop's products ``W(t)`` (original basis), loss and ``u`` at ``t = 0..steps``."""
    with np.errstate(all="ignore"):
        W = np.stack([product(layers) for layers in naive_gd(data.X, data.Y, layers0, eta, steps)])
        loss = np.sum((data.Y - data.X @ W) ** 2, axis=(1, 2)) / (2 * data.X.shape[0])
    c = data.problem.U_obs.shape[1]
    u = np.einsum("ji,tjk,ki->ti", data.stats.U[:, :c], W, data.stats.V[:, :c])
    return W, loss, u


def assert_u_close(fast: np.ndarray, slow: np.ndarray, rtol: float = RTOL) -> None:
    """Components agree to ``rtol`` relative to the run's largest ``|u|`` (some are ≈ 0);
    non-finite values (a diverging run's last step) are equal."""
    finite = np.isfinite(slow)
    assert np.array_equal(fast[~finite], slow[~finite], equal_nan=True)
    if finite.any():
        error = np.max(np.abs(fast[finite] - slow[finite]), initial=0.0)
        assert error <= rtol * np.max(np.abs(slow[finite])), error


# ----------------------------------------------------------------------------
# Engines against the naive loop


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("init", ["aligned", "random"])
@pytest.mark.parametrize("width", [2, 6], ids=["narrow", "wide"])
def test_engine_equals_naive_full_data_loop(kernel, data, depth, init, width):
    """Per-step loss and u, and the products, of every run of a batch (several η)."""
    runs = [
        init_layers(data.stats, depth, width, 0.5 + 0.25 * i, init, seed=i)
        for i in range(len(ETAS))
    ]
    engine = make_engine(data.problem, runs, ETAS, kernel)
    # products() is a copy: the arrays kept here stay those of their step
    pieces, products = [], [engine.products()]
    for steps in (1, 9, STEPS - 10):
        pieces.append(engine.advance(steps))
        products.append(engine.products())
    final_loss, final_u = engine.observe()
    loss = np.concatenate([piece[0] for piece in pieces] + [final_loss[:, None]], axis=1)
    u = np.concatenate([piece[1] for piece in pieces] + [final_u[:, None]], axis=1)
    assert loss.shape == (len(runs), STEPS + 1)
    assert u.shape == (len(runs), STEPS + 1, data.stats.m)
    for j, (layers0, eta) in enumerate(zip(runs, ETAS, strict=True)):
        W, naive_loss, naive_u = naive_trajectory(data, layers0, eta, STEPS)
        np.testing.assert_allclose(loss[j], naive_loss, rtol=RTOL, atol=0)
        assert_u_close(u[j], naive_u)
        for t, Ws in zip((0, 1, 10, STEPS), products, strict=True):
            assert relative(Ws[j], data.stats.Q.T @ W[t]) < RTOL


@given(
    depth=st.integers(1, 4),
    d=st.integers(1, 8),
    p=st.integers(1, 5),
    width=st.integers(1, 6),
    components=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    fraction=st.floats(0.01, 0.2),
)
@settings(max_examples=50, deadline=None)
def test_engines_equal_naive_loop_on_any_small_problem(
    depth, d, p, width, components, seed, fraction
):
    """Any small shape (padding of the compiled engine, fewer components than outputs)."""
    data = _problem(30, d, p, seed, components)
    eta = fraction / data.stats.mu[0]
    runs = [
        init_layers(data.stats, depth, width, 0.5, "aligned"),
        init_layers(data.stats, depth, width, 0.5, "random", seed),
    ]
    etas = [eta, eta / 2]
    steps = 20
    naive = [
        naive_trajectory(data, layers0, e, steps) for layers0, e in zip(runs, etas, strict=True)
    ]
    for kernel in KERNELS:
        engine = make_engine(data.problem, runs, etas, kernel)
        loss, u = engine.advance(steps)
        last_loss, last_u = engine.observe()
        W = engine.products()
        for j, (W_naive, naive_loss, naive_u) in enumerate(naive):
            np.testing.assert_allclose(loss[j], naive_loss[:-1], rtol=RTOL, atol=0)
            assert last_loss[j] == pytest.approx(naive_loss[-1], rel=RTOL)
            assert_u_close(np.vstack([u[j], last_u[j]]), naive_u)
            assert relative(W[j], data.stats.Q.T @ W_naive[-1]) < RTOL


def test_rank_deficient_inputs_equal_naive_loop(kernel):
    """THEORY §2.3: an input direction outside the data (μ_j = 0) gets no gradient."""
    X, Y = random_problem(n=30, d=5, p=2, seed=1)
    X[:, 4] = 0.0
    stats = dataset_stats(X, Y)
    data = SimpleNamespace(X=X, Y=Y, stats=stats, problem=EigenProblem.from_stats(stats))
    for depth in (1, 2, 3):
        layers0 = init_layers(stats, depth, 3, 0.5, "random", 2)
        engine = make_engine(data.problem, [layers0], [0.2], kernel)
        loss, u = engine.advance(50)
        W, naive_loss, naive_u = naive_trajectory(data, layers0, 0.2, 50)
        np.testing.assert_allclose(loss[0], naive_loss[:-1], rtol=RTOL, atol=0)
        assert_u_close(u[0], naive_u[:-1])
        assert relative(stats.Q @ engine.products()[0], W[-1]) < RTOL
        if depth == 1:  # the row of the dead input is frozen
            np.testing.assert_allclose((stats.Q @ engine.products()[0])[4], layers0[0][4])


# ----------------------------------------------------------------------------
# subset


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize(
    "keep",
    [
        np.array([0, 3, 9, 10]),
        np.array([10, 2, 5]),  # reordered
        np.arange(LANES + 3) % 3 != 1,  # boolean mask
        np.array([7]),
    ],
    ids=["indices", "reordered", "mask", "one"],
)
def test_subset_equals_advancing_all_then_selecting(kernel, data, depth, keep):
    """Bit for bit: the kept runs' state is copied exactly, the parent is untouched."""
    R = LANES + 3  # two groups of the compiled engine
    runs = [init_layers(data.stats, depth, 3, 0.5, "random", seed=i) for i in range(R)]
    etas = np.linspace(0.02, 0.3, R)
    full = make_engine(data.problem, runs, etas, kernel)
    full.advance(7)
    part = full.subset(keep)
    selected = np.arange(R)[keep]
    assert part.runs == selected.size
    np.testing.assert_array_equal(part.products(), full.products()[selected])
    part_loss, part_u = part.advance(13)
    full_loss, full_u = full.advance(13)
    np.testing.assert_array_equal(part_loss, full_loss[selected])
    np.testing.assert_array_equal(part_u, full_u[selected])
    np.testing.assert_array_equal(part.products(), full.products()[selected])
    for a, b in zip(part.observe(), full.observe(), strict=True):
        np.testing.assert_array_equal(a, b[selected])
    # A subset of a subset, and an engine that never shrank: the same bits.
    fresh = make_engine(data.problem, runs, etas, kernel)
    fresh.advance(20)
    np.testing.assert_array_equal(full.products(), fresh.products())
    inner = part.subset(np.arange(part.runs)[::-1])
    np.testing.assert_array_equal(inner.advance(5)[1], full.advance(5)[1][selected[::-1]])


def test_subset_by_slice_copies_the_state(kernel, data):
    """A basic index must not leave the subset sharing (and advancing) the parent's state."""
    runs = [init_layers(data.stats, 2, 3, 0.5, "random", seed=i) for i in range(4)]
    engine = make_engine(data.problem, runs, [0.1] * 4, kernel)
    before = engine.products()
    engine.subset(slice(0, 2)).advance(5)
    np.testing.assert_array_equal(engine.products(), before)


# ----------------------------------------------------------------------------
# sweep


@pytest.fixture(scope="module")
def small():
    """A small random problem (d 5, p 3) and its statistics."""
    return _problem(60, 5, 3, 0)


# Cells of every status on `small` within 300 steps: η = 0.02 runs out of steps,
# η = 0.3 converges at depth 1 and 2 (tol 1e-6), η = 50 diverges.
GRID = {"depth": [1, 2, 3], "eta": [0.02, 0.3, 50.0], "delta": [0.5, 2.0]}
RUN = {"max_steps": 300, "log_density": 10, "tol": 1e-6, "progress": False}


def _cells(ds):
    """(selection, cell) of every cell of a sweep."""
    dims = [dim for dim in ("depth", "eta", "delta", "seed") if dim in ds.dims]
    for values in itertools.product(*(ds[dim].values for dim in dims)):
        where = dict(zip(dims, values, strict=True))
        yield where, ds.sel(where)


def _same_bits(a, b) -> None:
    """Every variable of two sweeps (or cells of sweeps) holds the same bits."""
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name


@pytest.fixture(scope="module")
def all_sweeps(small):
    """The grid of :data:`GRID`: ``{kernel: {init: Dataset}}``."""
    return {
        kernel: {
            init: sweep(small.stats, **GRID, init=init, seeds=[0, 1], kernel=kernel, **RUN)
            for init in ("aligned", "random")
        }
        for kernel in KERNELS
    }


@pytest.fixture(params=KERNELS)
def grid_sweeps(request, all_sweeps):
    """The grid of :data:`GRID` with each init, run by one kernel."""
    return all_sweeps[request.param]


@pytest.mark.parametrize("init", ["aligned", "random"])
def test_sweep_cells_do_not_depend_on_the_rest_of_the_sweep(grid_sweeps, small, init):
    """Bit for bit: a cell alone, or its η beside a diverging η = 50, or in the whole grid."""
    big = grid_sweeps[init]
    kernel = big.attrs["kernel"]
    assert (big["status"].sel(eta=50.0) == "diverged").all()
    seeds = [1] if init == "random" else [0]
    for L in GRID["depth"]:
        beside = sweep(
            small.stats, L, [0.3, 50.0], GRID["delta"], init, seeds, kernel=kernel, **RUN
        )
        alone = sweep(small.stats, L, 0.3, GRID["delta"], init, seeds, kernel=kernel, **RUN)
        where = {"depth": [L], "eta": [0.3], **({"seed": seeds} if init == "random" else {})}
        _same_bits(alone, big.sel(where))
        _same_bits(alone, beside.sel({"eta": [0.3]}))
    cell = simulate(small.stats, 2, 0.02, 2.0, seed=1, init=init, kernel=kernel, **RUN)
    where = {"depth": 2, "eta": 0.02, "delta": 2.0, **({"seed": 1} if init == "random" else {})}
    _same_bits(cell, big.sel(where))


@pytest.mark.skipif("numba" not in KERNELS, reason="numba not installed")
@pytest.mark.parametrize("init", ["aligned", "random"])
def test_numpy_and_numba_sweeps_agree(all_sweeps, init):
    """Same status, stop steps and crossing steps; observables to 1e-10 relative.

    Relative to the size of ``W(t)`` (``‖W‖_F``) for what moves by at most ``‖ΔW‖``:
    ``u``, singular values and distances (a diverging run's small singular values
    are ill-conditioned, not wrong); element-wise for the loss.
    """
    numpy_run, numba_run = (all_sweeps[kernel][init] for kernel in ("numpy", "numba"))
    assert np.array_equal(numpy_run["status"], numba_run["status"])
    assert np.array_equal(numpy_run["stop_step"], numba_run["stop_step"])
    assert np.array_equal(numpy_run["crossing_step"], numba_run["crossing_step"], equal_nan=True)
    size = np.sqrt(numba_run["frobenius_norm_sq"].values)[..., None]
    scales = {
        "u": size,
        "singular_values": size,
        "dist_seq": size,
        "dist_rrr": size,
        "loss": np.abs(numba_run["loss"].values),
        "loss_final": np.abs(numba_run["loss_final"].values),
        "u_final": np.max(np.abs(numba_run["u_final"].values), axis=-1, keepdims=True),
    }
    for name, scale in scales.items():
        a, b = numpy_run[name].values, numba_run[name].values
        finite = np.isfinite(b)
        assert np.array_equal(a[~finite], b[~finite], equal_nan=True), name
        error = np.abs(a - b) / np.broadcast_to(scale, b.shape)
        assert np.all(error[finite] <= RTOL), (name, np.max(error[finite]))
    np.testing.assert_allclose(
        numpy_run["bound_violation"], numba_run["bound_violation"], rtol=1e-8, atol=1e-12
    )


@pytest.fixture(scope="module")
def naive_grid(small):
    """The naive loop's trajectory of every cell of the grid, by ``(init, cell)``."""
    out = {}
    for init, seeds in (("aligned", [0]), ("random", [0, 1])):
        for L, eta, delta, seed in itertools.product(*GRID.values(), seeds):
            layers0 = init_layers(small.stats, L, small.stats.m, delta, init, seed)
            trajectory = naive_trajectory(small, layers0, eta, RUN["max_steps"])
            out[init, L, eta, delta, seed] = trajectory
    return out


def test_sweep_rules_match_the_naive_trajectory(grid_sweeps, naive_grid, small):
    """Stop rules, exact crossing steps, Theorem 3 violations and logged observables,
    recomputed from the naive loop's full trajectory."""
    stats = small.stats
    n = small.X.shape[0]
    lstsq = np.linalg.lstsq(small.X, small.Y, rcond=None)[0]
    # rank Σxy = min(d, p) = width here: the target is the least-squares loss at every depth.
    target = np.sum((small.Y - small.X @ lstsq) ** 2) / (2 * n)
    log_steps = log_schedule(RUN["max_steps"], RUN["log_density"])
    seq = [theory.w_seq(stats.U, stats.V, stats.rho, k) for k in range(1, stats.m + 1)]
    statuses, violations, crossings = set(), 0, 0
    for init, ds in grid_sweeps.items():
        np.testing.assert_allclose(ds["loss_target"], target, rtol=1e-10)
        for where, cell in _cells(ds):
            cell_key = (where["depth"], where["eta"], where["delta"], where.get("seed", 0))
            W, loss, u = naive_grid[(init, *cell_key)]
            # stopping rules
            blowup = DIVERGENCE_FACTOR * max(loss[0], np.sum(small.Y**2) / n, 1.0)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(loss) | (loss > blowup)
                good = loss - target <= RUN["tol"] * (loss[0] - target)
            hits = np.flatnonzero(bad | good)
            stop = hits[0] if hits.size else RUN["max_steps"]
            status = ("diverged" if bad[stop] else "converged") if hits.size else "max_steps"
            statuses.add(status)
            assert cell["status"] == status, where
            assert cell["stop_step"] == stop, where
            # exact first crossings u_i ≥ f·ρ_i up to the stop
            reached = u[: stop + 1, :, None] >= np.multiply.outer(stats.rho, FRACTIONS)
            crossing = np.where(reached.any(axis=0), reached.argmax(axis=0), np.nan)
            np.testing.assert_array_equal(cell["crossing_step"], crossing, err_msg=str(where))
            # Theorem 3 (depth 2): largest envelope violation / ρ_i up to the stop
            violation = np.full(stats.m, np.nan)
            if where["depth"] == 2 and status != "diverged":
                t = np.arange(stop + 1)[:, None]
                lower, upper = theory.theorem3_envelopes(t, stats.s, stats.lam, u[0], where["eta"])
                excess = np.maximum(np.maximum(lower - u[: stop + 1], u[: stop + 1] - upper), 0)
                applies = ~np.isnan(lower).all(axis=0)
                violation[applies] = np.nanmax(excess[:, applies], axis=0) / stats.rho[applies]
            np.testing.assert_allclose(
                cell["bound_violation"], violation, rtol=1e-8, atol=1e-12, err_msg=str(where)
            )
            violations += np.sum(violation > 1e-3)
            crossings += np.sum(crossing > 0)
            # logged observables: the naive values up to the stop, NaN after
            kept = log_steps <= stop
            assert np.isnan(cell["loss"].values[~kept]).all()
            assert np.isnan(cell["u"].values[~kept]).all()
            np.testing.assert_allclose(cell["loss"].values[kept], loss[log_steps[kept]], rtol=RTOL)
            assert_u_close(cell["u"].values[kept], u[log_steps[kept]])
            assert cell["loss_final"] == pytest.approx(loss[stop], rel=RTOL, nan_ok=True)
            assert_u_close(cell["u_final"].values, u[stop])
            # singular values and distances move by at most ‖ΔW‖: relative to ‖W(t)‖
            finite = kept & np.isfinite(W).all(axis=(1, 2))[log_steps]
            Wt = W[log_steps[finite]]
            size = np.linalg.norm(Wt, axis=(1, 2))[:, None]
            sv = np.linalg.svd(Wt, compute_uv=False)
            assert np.all(np.abs(cell["singular_values"].values[finite] - sv) <= RTOL * size)
            dist = np.linalg.norm(Wt[:, None] - np.stack(seq), axis=(2, 3))
            assert np.all(np.abs(cell["dist_seq"].values[finite] - dist) <= RTOL * size)
            assert np.isnan(cell["singular_values"].values[~kept]).all()
    # every rule was exercised: all statuses, crossings after step 0, violated envelopes (ε ≠ 0)
    assert statuses == {"converged", "diverged", "max_steps"}
    assert crossings > 20 and violations > 5


def test_sweep_dimensions_and_coordinates(small):
    stats = small.stats
    common = {"max_steps": 50, "log_density": 5, "max_components": 2, "kernel": "numpy"}
    aligned = sweep(stats, [1, 3], [0.1, 0.2], 1.0, "aligned", seeds=[0, 7], **common)
    random = sweep(stats, 2, 0.1, [1.0, 2.0], "random", seeds=[3, 5, 8], width=4, **common)

    assert dict(aligned.sizes) == {
        "depth": 2,
        "eta": 2,
        "delta": 1,
        "step": log_schedule(50, 5).size,
        "component": 2,
        "fraction": len(FRACTIONS),
        "sv_index": 3,
        "k": stats.rank,
    }
    assert "seed" not in aligned.dims and "seed" not in aligned.coords
    assert random.sizes["seed"] == 3 and list(random["seed"].values) == [3, 5, 8]
    assert random["status"].dims == ("depth", "eta", "delta", "seed")
    assert aligned["status"].dims == ("depth", "eta", "delta")
    # the aligned init ignores the seeds
    _same_bits(aligned, sweep(stats, [1, 3], [0.1, 0.2], 1.0, "aligned", seeds=[1], **common))
    # different seeds, different random runs
    u = random["u"].sel(step=0).values
    assert not np.array_equal(u[..., 0, :], u[..., 1, :])

    for ds, cells in (
        (aligned, ("depth", "eta", "delta")),
        (random, ("depth", "eta", "delta", "seed")),
    ):
        assert list(ds["step"].values) == list(log_schedule(50, 5))
        assert list(ds["component"].values) == [1, 2]
        assert list(ds["fraction"].values) == list(FRACTIONS)
        assert list(ds["sv_index"].values) == [1, 2, 3]
        assert list(ds["k"].values) == list(range(1, stats.rank + 1))
        expected = {
            "u": (*cells, "step", "component"),
            "loss": (*cells, "step"),
            "test_loss": (*cells, "step"),
            "nuclear_norm": (*cells, "step"),
            "frobenius_norm_sq": (*cells, "step"),
            "singular_values": (*cells, "step", "sv_index"),
            "dist_seq": (*cells, "step", "k"),
            "dist_rrr": (*cells, "step", "k"),
            "crossing_step": (*cells, "component", "fraction"),
            "bound_violation": (*cells, "component"),
            "u_final": (*cells, "component"),
            "loss_final": cells,
            "loss_target": cells,
            "status": cells,
            "stop_step": cells,
        }
        assert {name: ds[name].dims for name in ds.data_vars} == expected
        assert json.loads(ds.attrs["settings"]) == {
            "max_steps": 50,
            "log_density": 5,
            "tol": 1e-8,
            "max_components": 2,
        }
        assert ds.attrs["kind"] == "lindyn.sweep" and ds.attrs["kernel"] == "numpy"
    assert list(aligned["depth"].values) == [1, 3]
    assert list(aligned["eta"].values) == [0.1, 0.2]
    assert list(aligned["delta"].values) == [1.0]
    assert aligned["init"] == "aligned" and aligned["width"] == stats.m
    assert random["init"] == "random" and random["width"] == 4
    # Theorem 3 is checked at depth 2 only
    assert np.isnan(aligned["bound_violation"]).all()
    one = simulate(stats, 2, 0.1, 1.0, seed=5, init="random", width=4, **common)
    assert one["u"].dims == ("step", "component") and one["status"].dims == ()
    _same_bits(one, random.sel(depth=2, eta=0.1, delta=1.0, seed=5))


def test_progress_bar(small, capsys):
    """``progress=True`` draws a tqdm bar on stderr (even when not a terminal); False does not."""
    run = {"max_steps": 100, "kernel": "numpy"}
    sweep(small.stats, [1, 2], 0.1, 1.0, progress=True, **run)
    err = capsys.readouterr().err
    assert "sweep of 2 runs" in err and "200/200" in err
    sweep(small.stats, [1, 2], 0.1, 1.0, progress=False, **run)
    assert capsys.readouterr().err == ""
    sweep(small.stats, [1, 2], 0.1, 1.0, **run)  # default: only big sweeps on a terminal
    assert capsys.readouterr().err == ""


def test_top_level_names_stay_the_functions():
    """`import lindyn.sweeps` must not shadow `lindyn.sweep` (a module named like it would)."""
    import lindyn
    import lindyn.sweeps

    assert callable(lindyn.sweep) and lindyn.sweep is lindyn.sweeps.sweep
    assert lindyn.simulate is lindyn.sweeps.simulate


# ----------------------------------------------------------------------------
# Per-cell budgets from the theory (budget="theory") and the crossings stop

# ε = 0 exactly, so every tracked component crosses 0.9·ρ_i (THEORY §4). Width 2 < m = 3:
# at depth ≥ 2 the first two components are tracked, at depth 1 all three.
COMMUTING_S = np.array([1.0, 0.6, 0.35])
COMMUTING_LAM = np.array([1.0, 0.8, 0.5, 0.3, 0.2])
THEORY_GRID = {"depth": [1, 2, 3], "eta": [0.1, 0.3], "delta": [1.5, 3.0]}
THEORY_RUN = {"width": 2, "log_density": 10, "tol": 1e-10, "progress": False}


@pytest.fixture(scope="module")
def commuting() -> SimpleNamespace:
    X, Y, _, _ = commuting_problem(COMMUTING_S, COMMUTING_LAM, p=3, n=40, seed=3)
    stats = dataset_stats(X, Y)
    return SimpleNamespace(X=X, Y=Y, stats=stats, problem=EigenProblem.from_stats(stats))


def _tracked(stats, depth: int) -> int:
    return min(stats.rank, THEORY_RUN["width"] if depth > 1 else stats.m)


def _naive_cell(data: SimpleNamespace, where: dict, steps: int):
    layers0 = init_layers(data.stats, where["depth"], THEORY_RUN["width"], where["delta"])
    return naive_trajectory(data, layers0, where["eta"], steps)


def _naive_crossings(u: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """First steps with ``u_i ≥ f·ρ_i``, (component, fraction), NaN: never."""
    reached = u[:, :, None] >= np.multiply.outer(rho, FRACTIONS)
    return np.where(reached.any(axis=0), reached.argmax(axis=0), np.nan)


def test_theory_budgets_are_step_budget_per_cell(commuting, kernel):
    """Each cell runs for its own budget; the 0.9 crossings GD makes all fall within it."""
    stats = commuting.stats
    ds = sweep(stats, **THEORY_GRID, budget="theory", max_steps=10**5, kernel=kernel, **THEORY_RUN)
    budgets, statuses = [], set()
    for where, cell in _cells(ds):
        n = _tracked(stats, where["depth"])
        expected, capped = step_budget(
            stats.s[:n],
            stats.lam[:n],
            where["depth"],
            where["eta"],
            where["delta"],
            max_steps=10**5,
        )
        assert not capped and cell["step_budget"] == expected, where
        assert cell["stop_step"] <= expected, where
        assert (cell["stop_step"] == expected) == (cell["status"] == "max_steps"), where
        statuses.add(str(cell["status"].values))
        crossing = cell["crossing_step"].values
        assert np.all(crossing[:n, -1] <= expected), where
        np.testing.assert_array_equal(cell["crossings_missed"], np.isnan(crossing[:n]).sum(axis=0))
        assert cell["crossings_missed"].sel(fraction=0.9) == 0
        if where["depth"] > 1:  # (at depth 1 the budget does not depend on δ)
            budgets.append(int(expected))
    assert len(set(budgets)) == len(budgets)  # every cell its own budget
    assert "max_steps" in statuses
    # one log schedule, from the largest budget
    # the logged steps of max_steps: shared with every other block of the grid
    np.testing.assert_array_equal(ds["step"], log_schedule(10**5, THEORY_RUN["log_density"]))
    assert np.isnan(ds["u"].sel(step=ds["step"] > ds["step_budget"].max())).all()
    assert json.loads(ds.attrs["settings"]) == {
        "max_steps": 10**5,
        "log_density": THEORY_RUN["log_density"],
        "tol": THEORY_RUN["tol"],
        "max_components": 32,
        "budget": "theory",
        "budget_margin": 1.5,
    }
    assert ds["crossings_missed"].dims == ("depth", "eta", "delta", "fraction")


def test_crossings_stop_matches_the_naive_loop(commuting, kernel):
    """A run stops at the step its last tracked component crosses 0.9·ρ_i, with the naive
    loop's iterates up to there: crossings exact, u and the loss to 1e-10."""
    stats = commuting.stats
    ds = sweep(stats, **THEORY_GRID, stop="crossings", max_steps=5000, kernel=kernel, **THEORY_RUN)
    assert json.loads(ds.attrs["settings"])["stop"] == "crossings"
    assert "budget" not in json.loads(ds.attrs["settings"])
    assert (ds["step_budget"] == 5000).all()
    log_steps = ds["step"].values
    for where, cell in _cells(ds):
        n = _tracked(stats, where["depth"])
        stop = int(cell["stop_step"])
        assert cell["status"] == "crossed", where
        _, loss, u = _naive_cell(commuting, where, stop)
        crossing = _naive_crossings(u, stats.rho)
        assert np.nanmax(crossing[:n, -1]) == stop and not np.isnan(crossing[:n, -1]).any()
        np.testing.assert_array_equal(cell["crossing_step"], crossing, err_msg=str(where))
        np.testing.assert_array_equal(cell["crossings_missed"], np.isnan(crossing[:n]).sum(axis=0))
        assert_u_close(cell["u_final"].values, u[stop])
        assert cell["loss_final"] == pytest.approx(loss[stop], rel=RTOL)
        kept = log_steps <= stop
        assert_u_close(cell["u"].values[kept], u[log_steps[kept]])
        assert np.isnan(cell["u"].values[~kept]).all()


def test_crossings_missed_counts_what_a_capped_budget_cuts_off(commuting, kernel):
    stats = commuting.stats
    cap = 60
    ds = sweep(
        stats, [2, 3], [0.1, 0.3], 3.0, budget="theory", max_steps=cap, kernel=kernel, **THEORY_RUN
    )
    missed = 0
    for where, cell in _cells(ds):
        n = _tracked(stats, where["depth"])
        budget, capped = step_budget(
            stats.s[:n], stats.lam[:n], where["depth"], where["eta"], where["delta"], max_steps=cap
        )
        assert cell["step_budget"] == budget and cell["stop_step"] == budget
        _, _, u = _naive_cell(commuting, where, int(budget))
        expected = np.isnan(_naive_crossings(u, stats.rho)[:n]).sum(axis=0)
        np.testing.assert_array_equal(cell["crossings_missed"], expected, err_msg=str(where))
        if capped:
            assert budget == cap and cell["status"] == "max_steps"
            missed += expected[-1]
    assert missed >= 2


def test_theory_budget_cells_do_not_depend_on_the_rest_of_the_block(commuting, kernel):
    """Bit for bit: a cell alone, beside a diverging η = 50, or in a block of other budgets."""
    stats = commuting.stats
    run = {"budget": "theory", "stop": "crossings", "max_steps": 10**4, "kernel": kernel}
    big = sweep(stats, [2, 3], [0.1, 0.3, 50.0], [1.5, 3.0], **run, **THEORY_RUN)
    assert (big["status"].sel(eta=50.0) == "diverged").all()
    assert set(big["status"].sel(eta=[0.1, 0.3]).values.ravel()) == {"crossed"}
    assert len(np.unique(big["step_budget"])) > 8
    for L, eta, delta in itertools.product([2, 3], [0.1, 0.3], [1.5, 3.0]):
        beside = sweep(stats, L, [eta, 50.0], delta, **run, **THEORY_RUN)
        _same_bits(beside.sel(eta=[eta]), big.sel(depth=[L], eta=[eta], delta=[delta]))
        alone = simulate(stats, L, eta, delta, **run, **THEORY_RUN)
        _same_bits(alone, big.sel(depth=L, eta=eta, delta=delta))


def test_new_sweep_options_are_validated(commuting):
    stats = commuting.stats
    for option, message in (
        ({"budget": "flow"}, "budget must be one of fixed, theory; got 'flow'"),
        ({"stop": "crossed"}, "stop must be one of converged, crossings; got 'crossed'"),
        ({"budget_margin": 0.9}, "budget_margin must be a finite number >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            sweep(stats, 2, 0.1, 1.0, max_steps=10, **option)
