"""Sweeps: many runs on one dataset, simulated together, returned as one xarray Dataset.

:func:`sweep` is what a notebook calls and what a pipeline block job runs: the
grid axes it is given (depth, η, δ and, for the random init, seed) become the
dimensions of the returned :class:`xarray.Dataset`. Cells of the same depth (and
width) share one engine (:mod:`lindyn.engines`, the compiled one when numba is
installed), which advances them side by side. Each run stops on its own:

* **converged** when the excess loss over the best loss reachable at its width
  (reduced-rank regression of rank ``min(r, rank Σxy)``, THEORY §8) falls below
  ``tol`` times its initial value;
* **diverged** when the loss is not finite or exceeds ``DIVERGENCE_FACTOR``
  times ``max(ℒ(0), tr(YᵀY)/n, 1)``, at the step where it happens;
* with ``stop="crossings"``, **crossed** at the first step at which every tracked
  component has crossed ``0.9·ρ_i`` (the largest of :data:`lindyn.runs.FRACTIONS`) and the loss
  is at most ``ℒ(0)`` (a diverging run's swings cross thresholds too);
* **max_steps** at its step budget otherwise: ``max_steps`` for every run, or with
  ``budget="theory"`` a budget per cell from the theory
  (:func:`lindyn.regime.step_budget` of its tracked components), capped by
  ``max_steps``.

The *tracked* components are the first ``max_components``, at most ``rank Σxy``
and, for ``L ≥ 2``, at most the width ``r`` (the components a run can learn).

A stopped run is dropped from its engine (the others are repacked bit for bit),
so it stops costing work and never disturbs the runs beside it.

From every step the sweep keeps, per run, the exact first step at which
``u_i ≥ f·ρ_i`` for ``f`` in :data:`lindyn.runs.FRACTIONS` and, at depth 2, the largest
violation of Theorem 3's envelopes (relative to ``ρ_i``); at the logged steps
(:func:`lindyn.gd.log_schedule`) it keeps ``u``, the loss, the test loss (when the
dataset has a test set, exactly from its statistics), the singular values
of ``W(t)``, its distances to ``W_k^seq`` and ``W_k^RRR`` and, for data with a
clean signal, the reconstruction error. Nothing of size ``steps × runs`` is held.
With a new option in use (``budget``, ``stop``) it also keeps each cell's
``step_budget`` and ``crossings_missed``: per fraction, how many tracked components
had not crossed by the run's stop, so that crossings beyond a budget are counted.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn import theory
from lindyn.config import allowed, default
from lindyn.engines import make_engine
from lindyn.gd import DIVERGENCE_FACTOR, EigenProblem, log_schedule
from lindyn.init import INIT_MODES, init_layers
from lindyn.regime import step_budget
from lindyn.runs import BALANCED, FRACTIONS
from lindyn.stats import Stats

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BUDGETS", "STOPS", "RunSettings", "simulate", "sweep"]

BUDGETS = allowed("budget")
STOPS = allowed("stop")
# Longest stretch of steps between two checks of the stopping rules.
CHUNK = 256


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every run of a sweep.

    Attributes
    ----------
    max_steps : int
        Step budget.
    log_density : int
        Logged steps per decade (:func:`lindyn.gd.log_schedule`).
    tol : float
        Relative excess-loss tolerance of the convergence rule.
    max_components : int
        Track ``u_i`` for at most this many components.
    budget : {"fixed", "theory"}
        Step budget of a cell: ``max_steps``, or the theory's need for its
        tracked crossings (:func:`lindyn.regime.step_budget`) capped by ``max_steps``.
    budget_margin : float
        Margin of the theory's budget (``budget="theory"`` only).
    stop : {"converged", "crossings"}
        Stop rules besides the budget: convergence and divergence, or also
        once every tracked component has crossed ``0.9·ρ_i``.
    """

    max_steps: int = default("max_steps")
    log_density: int = default("log_density")
    tol: float = default("tol")
    max_components: int = default("max_components")
    budget: str = default("budget")
    budget_margin: float = default("budget_margin")
    stop: str = default("stop")

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        for name in ("max_steps", "log_density", "max_components"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be a finite number > 0, got {self.tol!r}")
        for name, choices in (("budget", BUDGETS), ("stop", STOPS)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
                )
        if not (np.isfinite(self.budget_margin) and self.budget_margin >= 1):
            raise ValueError(
                f"budget_margin must be a finite number >= 1, got {self.budget_margin!r}"
            )

    @property
    def extended(self) -> bool:
        """Whether a new option is in use (then results carry budgets and missed crossings)."""
        return self.budget != "fixed" or self.stop != "converged"

    def record(self) -> dict[str, Any]:
        """The settings a store records: the new options only when used (old stores stay valid)."""
        out: dict[str, Any] = {
            "max_steps": self.max_steps,
            "log_density": self.log_density,
            "tol": self.tol,
            "max_components": self.max_components,
        }
        if self.budget != "fixed":
            out.update(budget=self.budget, budget_margin=self.budget_margin)
        if self.stop != "converged":
            out["stop"] = self.stop
        return out


@dataclass
class _Batch:
    """Per-run results of one engine's runs (leading axis: run)."""

    u: np.ndarray  # (R, S, c) at the logged steps
    loss: np.ndarray  # (R, S)
    singular_values: np.ndarray  # (R, S, q)
    distances: np.ndarray  # (R, S, K)
    recon_error: np.ndarray | None  # (R, S)
    test_loss: np.ndarray  # (R, S), NaN without a test set
    crossing_step: np.ndarray  # (R, c, F), NaN: never
    bound_violation: np.ndarray  # (R, c), NaN where Theorem 3 does not apply
    u_final: np.ndarray  # (R, c)
    loss_final: np.ndarray  # (R,)
    status: np.ndarray  # (R,) str
    stop_step: np.ndarray  # (R,) int
    step_budget: np.ndarray  # (R,) int
    crossings_missed: np.ndarray  # (R, F) int


class _Tracker:
    """Accumulates the per-run results while an engine advances."""

    def __init__(
        self,
        problem: EigenProblem,
        stats: Stats,
        etas: np.ndarray,
        budgets: np.ndarray,
        log_steps: np.ndarray,
        loss_target: float,
        tol: float,
        theorem3: bool,
        tracked: int,
        stop_crossings: bool,
    ) -> None:
        R = etas.size
        c = problem.U_obs.shape[1]
        d, p = problem.S.shape
        S, K = log_steps.size, problem.targets.shape[0]
        self.problem, self.etas, self.tol, self.theorem3 = problem, etas, tol, theorem3
        self.log_steps, self.loss_target = log_steps, loss_target
        self.tracked, self.stop_crossings = tracked, stop_crossings and tracked > 0
        self.s, self.lam, self.rho = stats.s[:c], stats.lam[:c], stats.rho[:c]
        self.thresholds = np.asarray(FRACTIONS)[:, None] * self.rho  # (F, c)
        nan = np.nan
        self.out = _Batch(
            u=np.full((R, S, c), nan),
            loss=np.full((R, S), nan),
            singular_values=np.full((R, S, min(d, p)), nan),
            distances=np.full((R, S, K), nan),
            recon_error=None if problem.clean_cross is None else np.full((R, S), nan),
            test_loss=np.full((R, S), nan),
            crossing_step=np.full((R, c, len(FRACTIONS)), nan),
            bound_violation=np.full((R, c), nan),
            u_final=np.full((R, c), nan),
            loss_final=np.full(R, nan),
            status=np.full(R, "max_steps", dtype=object),
            stop_step=np.zeros(R, dtype=np.int64),
            step_budget=np.asarray(budgets, dtype=np.int64),
            crossings_missed=np.zeros((R, len(FRACTIONS)), dtype=np.int64),
        )
        self.u0 = np.full((R, c), nan)
        self.first = self.reference = self.blowup = None

    def record_products(self, runs: np.ndarray, W: np.ndarray, log_index: int) -> None:
        """Observables of the logged step ``log_index`` from the products of ``runs``."""
        finite = np.all(np.isfinite(W), axis=(1, 2))
        runs, W = runs[finite], W[finite]
        if not runs.size:
            return
        out, problem = self.out, self.problem
        out.singular_values[runs, log_index] = np.linalg.svd(W, compute_uv=False)
        for k, target in enumerate(problem.targets):  # one target at a time: memory R×d×p
            diff = W - target
            out.distances[runs, log_index, k] = np.sqrt(np.einsum("rjl,rjl->r", diff, diff))
        if problem.held_out is not None:  # exact, from the test set's statistics (d²p a run)
            out.test_loss[runs, log_index] = problem.held_out.loss(W)
        if out.recon_error is not None:
            out.recon_error[runs, log_index] = (
                problem.cc
                - 2 * np.einsum("jk,rjk->r", problem.clean_cross, W)
                + np.einsum("j,rjk,rjk->r", problem.mu, W, W)
            )

    def record_steps(
        self, runs: np.ndarray, start: int, loss: np.ndarray, u: np.ndarray, last: bool
    ) -> np.ndarray:
        """Take iterates ``start, start + 1, …`` of ``runs``; return which runs stopped.

        ``last``: the chunk ends at the runs' step budget, every run stops.
        """
        n = loss.shape[1]
        out = self.out
        if start == 0:
            self.u0[runs] = u[:, 0]
            self.first = loss[:, 0]
            self.reference = np.maximum(self.first - self.loss_target, np.finfo(float).tiny)
            self.blowup = DIVERGENCE_FACTOR * np.maximum(
                np.maximum(self.first, self.problem.yy), 1.0
            )
        steps = start + np.arange(n)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(loss) | (loss > self.blowup[runs, None])
            good = (loss - self.loss_target) <= self.tol * self.reference[runs, None]
        hit = bad | good
        crossing = self._first_crossings(runs, start, u)
        if self.stop_crossings:
            # NaN (a tracked component not crossed yet) propagates through max: no stop.
            done = np.max(crossing[:, : self.tracked, -1], axis=1)
            hit |= (steps >= done[:, None]) & (loss <= self.first[runs, None])
        stopped = hit.any(axis=1)
        end = np.where(stopped, hit.argmax(axis=1), n - 1)  # last iterate of each run here
        ended = stopped | last
        rows = np.flatnonzero(ended)
        at_end = (stopped, end[stopped])
        out.status[runs[stopped]] = np.where(
            bad[at_end], "diverged", np.where(good[at_end], "converged", "crossed")
        )
        out.stop_step[runs[ended]] = start + end[ended]
        out.u_final[runs[ended]] = u[rows, end[rows]]
        out.loss_final[runs[ended]] = loss[rows, end[rows]]

        valid = np.arange(n)[None, :] <= end[:, None]  # (R, n)
        if stopped.any():  # iterates after a run's stop are not part of it
            u = np.where(valid[..., None], u, np.nan)
            loss = np.where(valid, loss, np.nan)
        in_chunk = np.flatnonzero((self.log_steps >= start) & (self.log_steps < start + n))
        local = self.log_steps[in_chunk] - start
        out.u[runs[:, None], in_chunk[None, :]] = u[:, local]
        out.loss[runs[:, None], in_chunk[None, :]] = loss[:, local]

        # Crossings after a run's stop are not part of it.
        out.crossing_step[runs] = np.where(
            crossing <= (start + end)[:, None, None], crossing, np.nan
        )

        if self.theorem3:
            lower, upper = theory.theorem3_envelopes(
                steps[None, :, None],
                self.s,
                self.lam,
                self.u0[runs, None, :],
                self.etas[runs, None, None],
            )
            with np.errstate(invalid="ignore"):
                excess = np.fmax(np.fmax(lower - u, u - upper), 0.0) / self.rho
                excess = np.where(np.isnan(lower) | ~valid[..., None], np.nan, excess)
            # fmax skips NaN: the result is NaN only where the theorem never applies.
            chunk_max = np.fmax.reduce(excess, axis=1)
            out.bound_violation[runs] = np.fmax(out.bound_violation[runs], chunk_max)
        return ended

    def _first_crossings(self, runs: np.ndarray, start: int, u: np.ndarray) -> np.ndarray:
        """Crossing steps ``(R, c, F)`` of ``runs`` so far, if the chunk ``u`` were all theirs.

        The first step with ``u ≥ f·ρ`` (NaN never crosses), searched only where the
        chunk reaches a threshold not crossed before.
        """
        peak = np.fmax.reduce(u, axis=1)  # (R, c), NaN only if every step is NaN
        crossing = self.out.crossing_step[runs]  # (R, c, F), a copy
        for f, threshold in enumerate(self.thresholds):
            rows, comps = np.nonzero(np.isnan(crossing[:, :, f]) & (peak >= threshold))
            if rows.size:
                hits = u[rows, :, comps] >= threshold[comps, None]  # (m, n)
                crossing[rows, comps, f] = start + hits.argmax(axis=1)
        return crossing

    def finish(self) -> _Batch:
        out = self.out
        out.crossings_missed = np.isnan(out.crossing_step[:, : self.tracked]).sum(axis=1)
        # A diverged run's way to overflow says nothing about Theorem 3.
        out.bound_violation[out.status == "diverged"] = np.nan
        out.status = out.status.astype(str)
        return out


def _run_batch(
    problem: EigenProblem,
    stats: Stats,
    layers0: Sequence[Sequence[np.ndarray]],
    etas: np.ndarray,
    budgets: np.ndarray,
    log_steps: np.ndarray,
    settings: RunSettings,
    loss_target: float,
    tracked: int,
    kernel: str,
    progress: Any = None,
) -> _Batch:
    """Advance one engine's runs to their stop (at most their budgets); the per-run results."""
    depth = len(layers0[0])
    last_step = int(budgets.max())
    log_index = {int(step): i for i, step in enumerate(log_steps)}
    tracker = _Tracker(
        problem,
        stats,
        etas,
        budgets,
        log_steps,
        loss_target,
        settings.tol,
        theorem3=depth == 2,
        tracked=tracked,
        stop_crossings=settings.stop == "crossings",
    )
    engine = make_engine(problem, layers0, etas, kernel)
    # Chunks end at every budget: a run's last iterate is then the engine's current one.
    bounds = np.union1d(np.union1d(log_steps, budgets), np.arange(CHUNK, last_step, CHUNK))
    runs = np.arange(etas.size)
    tracker.record_products(runs, engine.products(), 0)
    step = 0
    while runs.size:
        at_budget = budgets[runs] == step
        if at_budget.any():
            loss, u = engine.observe()
            tracker.record_steps(
                runs[at_budget], step, loss[at_budget, None], u[at_budget, None], last=True
            )
            runs = runs[~at_budget]
            if not runs.size:
                break
            engine = engine.subset(~at_budget)
        upto = int(bounds[np.searchsorted(bounds, step, side="right")])
        loss, u = engine.advance(upto - step)
        ended = tracker.record_steps(runs, step, loss, u, last=False)
        if progress is not None:
            progress.update(loss.shape[1])
        if ended.any():
            runs = runs[~ended]
            if runs.size:
                engine = engine.subset(~ended)
        step += loss.shape[1]
        if step in log_index and runs.size:
            tracker.record_products(runs, engine.products(), log_index[step])
    if progress is not None:
        progress.update(last_step - step)
    return tracker.finish()


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]


def sweep(
    stats: Stats,
    depth: int | Sequence[int],
    eta: float | Sequence[float],
    delta: float | Sequence[float],
    init: str = "aligned",
    seeds: int | Sequence[int] = (0,),
    width: int | None = None,
    *,
    ratio: float = BALANCED,
    max_steps: int = RunSettings.max_steps,
    log_density: int = RunSettings.log_density,
    tol: float = RunSettings.tol,
    max_components: int = RunSettings.max_components,
    budget: str = RunSettings.budget,
    budget_margin: float = RunSettings.budget_margin,
    stop: str = RunSettings.stop,
    kernel: str = "auto",
    progress: bool | None = None,
    dataset: str | None = None,
) -> xr.Dataset:
    """Simulate every cell of a grid on one dataset and return the runs as one Dataset.

    Parameters
    ----------
    stats : Stats
        Statistics of the dataset (:func:`lindyn.dataset_stats`).
    depth, eta, delta : scalar or sequence
        Grid axes: number of layers ``L ≥ 1``, absolute step sizes, init scales
        (every layer starts at ``e^{−δ}``).
    init : {"aligned", "random"}
        Initialisation of every cell.
    seeds : int or sequence of int
        Seeds of the random init (one cell each). The aligned init is
        deterministic: it has no seed axis and ``seeds`` is ignored.
    width : int, optional
        Hidden width ``r`` (default ``m = min(d, p)``).
    ratio : float
        Per-layer scale ratio of the init, first layer over last, the product's
        scale unchanged (:func:`lindyn.init.layer_scales`; 1: balanced).
    max_steps, log_density, tol, max_components, budget, budget_margin, stop
        See :class:`RunSettings`. With ``budget="theory"`` each cell runs for the
        steps its tracked components' 0.9 crossings need per the ε = 0 flow (and
        Corollary 3's ``t⁺`` at depth 2) from the aligned init of its δ, times
        ``budget_margin``, at most ``max_steps`` (for the random or an unbalanced
        init this is an estimate); the logged steps stay those of ``max_steps``, NaN past a
        cell's stop.
    kernel : {"auto", "numba", "numpy"}
        Engine (:func:`lindyn.engines.make_engine`); both give the same iterates.
    progress : bool, optional
        Show a progress bar (default: on an interactive terminal, for sweeps of
        more than 10⁶ run-steps).
    dataset : str, optional
        The dataset's name in the results (default: its label or loader).

    Returns
    -------
    xarray.Dataset
        Dimensions ``depth, eta, delta`` (and ``seed`` for the random init), then
        ``step`` (logged steps), ``component``, ``fraction``, ``sv_index``, ``k``;
        scalar coordinates ``init``, ``width`` and ``ratio``; per cell ``status``,
        ``stop_step``, ``loss_final``, ``loss_target`` and, when ``budget`` or
        ``stop`` is not the default, ``step_budget`` and ``crossings_missed``
        (per fraction); provenance in ``attrs``.

    Examples
    --------
    >>> import lindyn
    >>> data = lindyn.load_dataset("commuting", d=6, p=3, n=50)
    >>> stats = lindyn.dataset_stats(data.X, data.Y)
    >>> runs = lindyn.sweep(stats, depth=2, eta=[0.05, 0.1], delta=[2.0, 3.0],
    ...                     init="random", seeds=[0, 1], max_steps=500)
    >>> runs["status"].dims
    ('depth', 'eta', 'delta', 'seed')
    """
    import xarray as xr
    from tqdm.auto import tqdm

    from lindyn.provenance import provenance

    depths = [int(v) for v in _as_list(depth)]
    etas = [float(v) for v in _as_list(eta)]
    deltas = [float(v) for v in _as_list(delta)]
    seed_list = [int(v) for v in _as_list(seeds)] if init == "random" else [0]
    settings = RunSettings(
        int(max_steps),
        int(log_density),
        float(tol),
        int(max_components),
        budget,
        float(budget_margin),
        stop,
    )
    settings.validate()
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(INIT_MODES)}; got {init!r}")
    for name, values in (("depth", depths), ("eta", etas), ("delta", deltas), ("seed", seed_list)):
        if not values:
            raise ValueError(f"{name} needs at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} values must be distinct, got {values}")
    if any(L < 1 for L in depths):
        raise ValueError(f"depth must be integers >= 1, got {depths}")
    if not all(np.isfinite(v) and v > 0 for v in etas):
        raise ValueError(f"eta must be finite numbers > 0, got {etas}")
    if not all(np.isfinite(v) for v in deltas):
        raise ValueError(f"delta must be finite numbers, got {deltas}")
    r = stats.m if width is None else int(width)
    if r < 1:
        raise ValueError(f"width must be an integer >= 1, got {width!r}")
    ratio = float(ratio)
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be a finite number > 0, got {ratio!r}")

    K = max(stats.rank, 1)
    seq = [theory.w_seq(stats.U, stats.V, stats.rho, k) for k in range(1, K + 1)]
    rrr = [stats.w_rrr(k) for k in range(1, K + 1)]
    problem = EigenProblem.from_stats(stats, settings.max_components, targets=seq + rrr)
    cells = list(itertools.product(etas, deltas, seed_list))
    cell_etas = np.array([e for e, _, _ in cells])
    # Components a run can learn: at depth ≥ 2 at most the width.
    tracked = {L: min(problem.U_obs.shape[1], stats.rank, r if L > 1 else stats.m) for L in depths}
    budgets = {}
    for L in depths:
        if settings.budget == "theory" and tracked[L]:
            budgets[L], _ = step_budget(
                stats.s[: tracked[L]],
                stats.lam[: tracked[L]],
                L,
                cell_etas,
                [dl for _, dl, _ in cells],
                f=FRACTIONS[-1],
                margin=settings.budget_margin,
                max_steps=settings.max_steps,
            )
        else:
            budgets[L] = np.full(len(cells), settings.max_steps, dtype=np.int64)
    # The schedule of max_steps whatever the budgets: a cell's logged steps then depend on
    # nothing else in its block, and blocks of one grid share them (they are combined).
    log_steps = log_schedule(settings.max_steps, settings.log_density)
    batches = []
    if progress is None:
        # By default a bar for big sweeps, on an interactive terminal only (None).
        disable = None if sum(b.sum() for b in budgets.values()) > 10**6 else True
    else:
        disable = not progress
    start = time.perf_counter()
    with tqdm(
        total=int(sum(b.max() for b in budgets.values())),
        disable=disable,
        unit="step",
        desc=f"sweep of {len(depths) * len(cells)} runs",
    ) as bar:
        for L in depths:
            layers0 = [init_layers(stats, L, r, dl, init, sd, ratio) for _, dl, sd in cells]
            target = stats.rrr_loss(min(r, K) if L > 1 else K)
            batch = _run_batch(
                problem,
                stats,
                layers0,
                cell_etas,
                budgets[L],
                log_steps,
                settings,
                target,
                tracked[L],
                kernel,
                bar,
            )
            batches.append((batch, target))
    elapsed = time.perf_counter() - start

    grid = [len(depths), len(etas), len(deltas)] + ([len(seed_list)] if init == "random" else [])
    cell_dims = ("depth", "eta", "delta", "seed")[: len(grid)]

    def stack(name: str) -> np.ndarray:
        arrays = [getattr(batch, name) for batch, _ in batches]
        value = np.stack(arrays)
        return value.reshape(*grid, *value.shape[2:])

    c = problem.U_obs.shape[1]
    sv = stack("singular_values")
    dist = stack("distances")
    variables: dict[str, Any] = {
        "u": (
            (*cell_dims, "step", "component"),
            stack("u"),
            {"long_name": "u_i(t) = U_iᵀ W(t) V_i"},
        ),
        "loss": ((*cell_dims, "step"), stack("loss"), {"long_name": "loss 1/(2n)‖Y − XW‖²"}),
        "test_loss": (
            (*cell_dims, "step"),
            stack("test_loss"),
            {"long_name": "test loss 1/(2n′)‖Y′ − X′W‖² (NaN: no test set)"},
        ),
        "nuclear_norm": ((*cell_dims, "step"), sv.sum(axis=-1), {"long_name": "‖W(t)‖_*"}),
        "frobenius_norm_sq": (
            (*cell_dims, "step"),
            (sv**2).sum(axis=-1),
            {"long_name": "‖W(t)‖²_F"},
        ),
        "singular_values": (
            (*cell_dims, "step", "sv_index"),
            sv,
            {"long_name": "singular values of W(t)"},
        ),
        "dist_seq": (
            (*cell_dims, "step", "k"),
            dist[..., :K],
            {"long_name": "‖W(t) − W_k^seq‖_F"},
        ),
        "dist_rrr": (
            (*cell_dims, "step", "k"),
            dist[..., K:],
            {"long_name": "‖W(t) − W_k^RRR‖_F"},
        ),
        "crossing_step": (
            (*cell_dims, "component", "fraction"),
            stack("crossing_step"),
            {"long_name": "first step with u_i ≥ f·ρ_i (exact; NaN: never)", "units": "steps"},
        ),
        "bound_violation": (
            (*cell_dims, "component"),
            stack("bound_violation"),
            {"long_name": "max over steps of Theorem 3 envelope violation / ρ_i (depth 2)"},
        ),
        "u_final": ((*cell_dims, "component"), stack("u_final"), {"long_name": "u_i at stop"}),
        "loss_final": (cell_dims, stack("loss_final"), {"long_name": "loss at the stop step"}),
        "loss_target": (
            cell_dims,
            np.broadcast_to(
                np.reshape([target for _, target in batches], (-1, *[1] * (len(grid) - 1))), grid
            ),
            {"long_name": "best loss reachable at this width (convergence reference)"},
        ),
        "status": (
            cell_dims,
            stack("status"),
            {"long_name": "converged, crossed, max_steps (budget) or diverged"},
        ),
        "stop_step": (cell_dims, stack("stop_step"), {"long_name": "last step computed"}),
    }
    if settings.extended:
        variables["step_budget"] = (
            cell_dims,
            stack("step_budget"),
            {"long_name": "step budget of the cell", "units": "steps"},
        )
        variables["crossings_missed"] = (
            (*cell_dims, "fraction"),
            stack("crossings_missed"),
            {
                "long_name": "tracked components not past f·ρ_i by the stop step (the first "
                "min(max_components, rank Σxy, r at depth ≥ 2)); at status max_steps the "
                "crossings the budget cut off"
            },
        )
    if batches[0][0].recon_error is not None:
        variables["recon_error"] = (
            (*cell_dims, "step"),
            stack("recon_error"),
            {"long_name": "clean-signal reconstruction error ‖X_clean − XW‖²/n"},
        )
    coords = {
        "depth": depths,
        "eta": etas,
        "delta": deltas,
        "step": ("step", log_steps, {"long_name": "gradient-descent step", "units": "steps"}),
        "component": ("component", np.arange(1, c + 1), {"long_name": "component (by s_i)"}),
        "fraction": ("fraction", np.asarray(FRACTIONS), {"long_name": "f in u_i ≥ f·ρ_i"}),
        "sv_index": np.arange(1, sv.shape[-1] + 1),
        "k": ("k", np.arange(1, K + 1), {"long_name": "rank k of the target solution"}),
        "init": init,
        "width": r,
        "ratio": ratio,
    }
    if init == "random":
        coords["seed"] = seed_list
    name = dataset or stats.meta.get("label") or stats.meta.get("name", "")
    attrs = {
        "kind": "lindyn.sweep",
        "dataset": name,
        "settings": json.dumps(settings.record(), sort_keys=True),
        "stats_hash": stats.stats_hash,
        "data_hash": stats.meta.get("data_hash", ""),
        "eps_a1": stats.eps_a1,
        "kernel": kernel,
        "elapsed_seconds": elapsed,
        **provenance(),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def simulate(
    stats: Stats,
    depth: int,
    eta: float,
    delta: float,
    seed: int = 0,
    width: int | None = None,
    init: str = "aligned",
    **settings: Any,
) -> xr.Dataset:
    """Simulate one run: :func:`sweep` on a single cell, grid axes dropped.

    Parameters
    ----------
    stats : Stats
    depth, eta, delta, seed, width, init
        The cell (see :func:`sweep`).
    **settings
        ``ratio``, ``max_steps``, ``log_density``, ``tol``, ``max_components``,
        ``budget``, ``budget_margin``, ``stop``, ``kernel``.

    Returns
    -------
    xarray.Dataset
        One run: ``u (step, component)``, ``loss (step)``, ``status``, ….
    """
    runs = sweep(stats, depth, eta, delta, init, [seed], width, **settings)
    return runs.isel({dim: 0 for dim in ("depth", "eta", "delta", "seed") if dim in runs.dims})
