"""Simulate grid cells: initialise, run the GD kernel, derive what the theory checks.

A *cell* is one run: (depth, η, δ, seed, init, width) on one dataset. Cells that
share depth and width are advanced together by :func:`lindyn.gd.gd_batch`. From
the per-step trajectory, each run keeps

* the logged observables (``u``, loss, singular values, norms, distances to
  ``W_k^seq`` and ``W_k^RRR``, clean-signal reconstruction error);
* the exact first step at which ``u_i ≥ f·ρ_i`` for ``f`` in :data:`FRACTIONS`;
* for depth 2, the largest violation of Theorem 3's envelopes over every step
  (relative to ``ρ_i``; NaN where the theorem does not apply).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lindyn import theory
from lindyn.gd import EigenProblem, gd_batch, log_schedule
from lindyn.init import INIT_MODES, init_layers
from lindyn.stats import Stats

__all__ = ["FRACTIONS", "CellSpec", "RunRecord", "run_cells", "simulate", "specs_from_grid"]

FRACTIONS = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class CellSpec:
    """Parameters of one run.

    Attributes
    ----------
    depth : int
        Number of layers ``L ≥ 1``.
    eta : float
        Absolute step size on the dataset after its preprocessing.
    delta : float
        Init scale (each layer at ``e^{−δ}``).
    seed : int
        Seed of a random init.
    init : {"aligned", "random"}
    width : int or None
        Hidden width ``r``; None means ``m = min(d, p)``.
    """

    depth: int
    eta: float
    delta: float
    seed: int = 0
    init: str = "aligned"
    width: int | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid parameter."""
        if int(self.depth) != self.depth or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        if not (np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"eta must be a finite number > 0, got {self.eta!r}")
        if not np.isfinite(self.delta):
            raise ValueError(f"delta must be a finite number, got {self.delta!r}")
        if self.init not in INIT_MODES:
            raise ValueError(f"init must be one of {INIT_MODES}, got {self.init!r}")
        if self.width is not None and (int(self.width) != self.width or self.width < 1):
            raise ValueError(f"width must be an integer >= 1, got {self.width!r}")


@dataclass
class RunRecord:
    """Everything stored about one finished run (numpy only)."""

    spec: CellSpec
    width: int
    log_steps: np.ndarray
    u: np.ndarray  # (S, c) at log steps
    loss: np.ndarray  # (S,)
    singular_values: np.ndarray  # (S, q)
    dist_seq: np.ndarray  # (S, K)
    dist_rrr: np.ndarray  # (S, K)
    recon_error: np.ndarray | None  # (S,)
    crossing_step: np.ndarray  # (c, len(FRACTIONS)), NaN if never
    bound_violation: np.ndarray  # (c,), NaN where Theorem 3 does not apply
    u_final: np.ndarray  # (c,)
    loss_final: float
    loss_target: float
    status: str
    stop_step: int
    params: dict[str, Any]
    elapsed_seconds: float


def _theorem3_violation(u: np.ndarray, stats: Stats, eta: float) -> np.ndarray:
    """Largest ``max(lower − u, u − upper, 0)/ρ_i`` over all steps, per component."""
    c = u.shape[1]
    s, lam, rho = stats.s[:c], stats.lam[:c], stats.rho[:c]
    steps = np.arange(u.shape[0])[:, None]
    lower, upper = theory.theorem3_envelopes(steps, s, lam, u[0], eta)
    with np.errstate(invalid="ignore"):
        excess = np.fmax(lower - u, u - upper)
        violation = np.where(np.isnan(lower), np.nan, np.fmax(excess, 0.0) / rho)
    applicable = ~np.all(np.isnan(lower), axis=0)
    out = np.full(c, np.nan)
    out[applicable] = np.nanmax(violation[:, applicable], axis=0)
    return out


def run_cells(
    stats: Stats,
    specs: Sequence[CellSpec],
    max_steps: int = 10_000,
    log_density: int = 20,
    tol: float = 1e-8,
    max_components: int = 64,
) -> list[RunRecord]:
    """Simulate several cells on one dataset, batching those of the same shape.

    Parameters
    ----------
    stats : Stats
        Statistics of the dataset.
    specs : sequence of CellSpec
    max_steps : int
        Step budget.
    log_density : int
        Logged steps per decade.
    tol : float
        Convergence tolerance (see :mod:`lindyn.gd`).
    max_components : int
        Track ``u_i`` for at most this many components.

    Returns
    -------
    list of RunRecord, in the order of ``specs``
    """
    for spec in specs:
        spec.validate()
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    steps = log_schedule(max_steps, log_density)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, spec in enumerate(specs):
        width = stats.m if spec.width is None else int(spec.width)
        groups.setdefault((int(spec.depth), width), []).append(i)

    records: list[RunRecord | None] = [None] * len(specs)
    for (depth, width), members in groups.items():
        start = time.perf_counter()
        # Distances to every W_k (k ≤ rank Σxy), whatever the width, so that all
        # runs on a dataset share the ``k`` axis.
        K = max(stats.rank, 1)
        seq = [theory.w_seq(stats.U, stats.V, stats.rho, k) for k in range(1, K + 1)]
        rrr = [stats.w_rrr(k) for k in range(1, K + 1)]
        problem = EigenProblem.from_stats(stats, max_components, targets=seq + rrr)
        target = stats.rrr_loss(min(width, K) if depth > 1 else K)
        layers0 = [
            init_layers(stats, depth, width, specs[i].delta, specs[i].init, specs[i].seed)
            for i in members
        ]
        result = gd_batch(
            problem,
            layers0,
            [specs[i].eta for i in members],
            max_steps,
            steps,
            loss_target=target,
            tol=tol,
        )
        elapsed = (time.perf_counter() - start) / len(members)
        for j, i in enumerate(members):
            spec = specs[i]
            u_all = result.u[j, : result.stop_step[j] + 1]
            c = u_all.shape[1]
            first = np.stack(
                [theory.first_crossing(u_all, stats.rho[:c], f, axis=0) for f in FRACTIONS],
                axis=-1,
            ).astype(np.float64)
            first[first < 0] = np.nan
            violation = (
                _theorem3_violation(u_all, stats, spec.eta)
                if depth == 2 and result.status[j] != "diverged"
                else np.full(c, np.nan)
            )
            sv = result.singular_values[j]
            records[i] = RunRecord(
                spec=spec,
                width=width,
                log_steps=steps,
                u=result.u[j, steps],
                loss=result.loss[j, steps],
                singular_values=sv,
                dist_seq=result.distances[j, :, :K],
                dist_rrr=result.distances[j, :, K:],
                recon_error=None if result.recon_error is None else result.recon_error[j],
                crossing_step=first,
                bound_violation=violation,
                u_final=u_all[-1],
                loss_final=float(result.loss[j, result.stop_step[j]]),
                loss_target=float(target),
                status=result.status[j],
                stop_step=int(result.stop_step[j]),
                params={
                    **asdict(spec),
                    "width": width,
                    "max_steps": int(max_steps),
                    "log_density": int(log_density),
                    "tol": float(tol),
                    "max_components": int(max_components),
                },
                elapsed_seconds=elapsed,
            )
    return records  # type: ignore[return-value]


def simulate(
    stats: Stats,
    depth: int,
    eta: float,
    delta: float,
    seed: int = 0,
    width: int | None = None,
    init: str = "aligned",
    max_steps: int = 10_000,
    log_density: int = 20,
    tol: float = 1e-8,
    max_components: int = 64,
):
    """Simulate one run and return it as an :class:`xarray.Dataset`.

    Parameters
    ----------
    stats : Stats
        Statistics of the dataset (:func:`lindyn.dataset_stats`).
    depth, eta, delta, seed, width, init
        See :class:`CellSpec`.
    max_steps, log_density, tol, max_components
        See :func:`run_cells`.

    Returns
    -------
    xarray.Dataset
        The run store's content (see :func:`lindyn.store.run_dataset`).
    """
    from lindyn.store import run_dataset

    spec = CellSpec(depth, eta, delta, seed, init, width)
    (record,) = run_cells(stats, [spec], max_steps, log_density, tol, max_components)
    return run_dataset(record, stats)


def specs_from_grid(
    depths: Iterable[int],
    etas: Iterable[float],
    deltas: Iterable[float],
    seeds: Iterable[int],
    inits: Iterable[str],
    width: int | None = None,
) -> list[CellSpec]:
    """All cells of a grid; the aligned init is deterministic, so it gets seed 0 only."""
    specs = []
    for depth in depths:
        for eta in etas:
            for delta in deltas:
                for init in inits:
                    for seed in [0] if init == "aligned" else seeds:
                        specs.append(CellSpec(depth, eta, delta, seed, init, width))
    return specs
