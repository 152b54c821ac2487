"""The ε > 0 departure law: how far aligned-init dynamics leave the ε = 0 predictions.

The ``commuting`` loader builds data with ``UᵀΣxU = Λ + B`` (B symmetric with zero
diagonal, ``‖B‖_F = perturbation·‖Λ‖_F``, a direction fixed by the seed), so a
sweep over ``perturbation`` changes only the size of the part that breaks
Assumption 1 (THEORY §3): ``s_i``, ``λ_i`` and ``ρ_i`` stay those of the ε = 0
problem. For each (perturbation, seed) :func:`measure` runs :func:`lindyn.sweep`
(aligned init, every step logged) and compares each run with what the same run
would do under ε = 0, the exact decoupled recursion of THEORY §4
(:func:`epsilon_zero_prediction`, :func:`lindyn.theory.gd_component`) from the
same ``u_i(0) = e^{−Lδ}``:

``u_departure``
    ``max_t |u_i(t) − u_i^{ε=0}(t)| / ρ_i`` over every step up to the run's stop.
``crossing_shift``
    ``(t_i(f) − t_i^{ε=0}(f)) / t_i^{ε=0}(f)`` for f in :data:`lindyn.runs.FRACTIONS`,
    both crossing times interpolated linearly between the first step with
    ``u_i ≥ f·ρ_i`` and the step before (so that shifts below one step are
    resolved); ``+inf`` when the ε = 0 recursion crosses before the run's stop
    and the run does not (the component converges below ``f·ρ_i``).
``bound_violation``
    Theorem 3's largest envelope violation over the steps, relative to ρ_i
    (THEORY §7; depth 2, from the sweep; NaN at other depths).
``product_departure``
    ``max_t ‖W(t) − W^{ε=0}(t)‖_F / ‖W^{ε=0}(∞)‖_F`` with
    ``W^{ε=0}(t) = U diag(u^{ε=0}(t)) Vᵀ``, from the logged ``‖W(t)‖²_F`` and
    ``u_i(t)``: ``‖W − W⁰‖² = ‖W‖² − 2Σu_i u_i⁰ + Σ(u_i⁰)²``. The subtraction
    leaves a rounding floor of about ``1e-8`` (the square root of float64's
    precision), not ``1e-16``.
``product_rate``
    ``max_{k ≥ 1} ‖W(k) − W^{ε=0}(k)‖_F / (η k)``: the smallest ``C·‖B‖`` with
    ``‖W(t) − W^{ε=0}(t)‖ ≤ C‖B‖t`` at flow time ``t = ηk`` (Theorem 1, below).

At ``perturbation = 0`` every measure is zero to rounding (the tests check it).

**The law.** :func:`fit_power_law` fits ``departure ≈ C·ε_A1^α`` by least squares
on the logarithms over the points above the measure's rounding floor
(:data:`FLOORS`); :func:`fit_table` does so per measure and (depth, η, δ) cell,
and pooled per depth with one α and one prefactor per cell (the prefactor row
is the largest cell's). Uncertainty: the regression's standard errors and the
standard deviation over a bootstrap of the seeds (each seed draws a new
direction of B and new bases U, V). ``ε_10%`` is the largest ε_A1 up to which
the measure stays within ``tolerance`` (default 10 %): measured (every seed and
cell of the grid, every smaller perturbation included) and from the fit,
``(tolerance/C)^{1/α}``.

A first-order argument predicts α = 2 for the diagonal coordinates: the
gradient's diagonal in the (U, V) basis receives ``(B·D)_ii = B_ii D_ii = 0``
at first order (B has a zero diagonal, D = diag(u)); the off-diagonal parts of
the layers and of the product grow at first order in ‖B‖ and feed back into
the diagonal only at second order. The product itself departs at first order
(α = 1), through its off-diagonal part.

**Theorem 1 of the paper (reconstructed).** The formulas of our copy are lost;
its proof (appendix B.2) survives in words: for L = 2, the gradient flow and
the aligned initialisation, Assumption 1 with ``‖B‖ ≤ ε``, the layers stay in a
compact set (its Lemmas 2–3); the flow's vector field is Lipschitz there (with
constant K) and the B-terms are bounded by ``ε·C``; Grönwall's inequality
(its Lemma 4: ``φ(t) ≤ α(t) + ∫₀ᵗ β φ`` with α non-decreasing gives
``φ(t) ≤ α(t)e^{∫₀ᵗβ}``) applied to ``φ = ‖W_1 − W_1⁰‖ + ‖W_2 − W_2⁰‖``,
``α(t) = εCt``, ``β = K`` then yields

    ‖W_ε(t) − W_0(t)‖  ≤  ε · C · t · e^{K t},

C and K depending on the data and the initialisation but not given
explicitly (Lipschitz constants on a compact set). With unknown constants, the
bound can be held against measurements in its form only:
:func:`theorem1_check` tests that the departure is (at least) linear in
ε = ‖B‖₂ at every time (the fitted exponent of ``product_departure`` and the
ratio ``departure/‖B‖₂`` at the two smallest perturbations, which must agree
if the limit ε → 0 is linear) and reports the smallest constant with which the
bound holds with K = 0 on the measured horizon (``max product_rate/‖B‖₂``).
The bound is for the flow; a GD step k is flow time ηk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lindyn import theory
from lindyn.config import default

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from lindyn.stats import Stats

__all__ = [
    "DEPARTURE_KIND",
    "FLOORS",
    "MEASURES",
    "PowerLaw",
    "cell_measures",
    "crossing_time",
    "departures",
    "eps_10",
    "epsilon_zero_prediction",
    "every_step_density",
    "fit_power_law",
    "fit_table",
    "measure",
    "open_departure",
    "study_fit",
    "theorem1_check",
    "write_departure",
]

DEPARTURE_KIND = "lindyn.departure"
# The per-cell measures (:func:`cell_measures`), what each reduces, and its description.
MEASURES: dict[str, str] = {
    "u_departure": "max_i max_t |u_i − u_i^(ε=0)|/ρ_i",
    "crossing_shift": "max_i |t_i(0.5) − t_i^(ε=0)(0.5)|/t_i^(ε=0)(0.5)",
    "crossing_shift_all": "max_{i,f} |t_i(f) − t_i^(ε=0)(f)|/t_i^(ε=0)(f), f = 0.1, 0.5, 0.9",
    "bound_violation": "max_i Theorem 3 violation / ρ_i (depth 2)",
    "product_departure": "max_t ‖W − W^(ε=0)‖_F/‖W^(ε=0)(∞)‖_F",
}
# Values at or below these are rounding (the ε = 0 runs' level), left out of the fits.
FLOORS: dict[str, float] = {
    "u_departure": 1e-12,
    "crossing_shift": 1e-12,
    "crossing_shift_all": 1e-12,
    "bound_violation": 1e-12,
    "product_departure": 1e-6,
}


def every_step_density(max_steps: int) -> int:
    """The ``log_density`` with which :func:`lindyn.gd.log_schedule` logs every step.

    Consecutive logged steps near ``max_steps`` are ``max_steps·ln 10/density``
    apart, so a density of ``⌈max_steps·ln 10⌉ + 1`` leaves no step out.
    """
    return math.ceil(max_steps * math.log(10)) + 1


def epsilon_zero_prediction(
    u: xr.DataArray, s: np.ndarray, lam: np.ndarray, depth: int
) -> xr.DataArray:
    """What ε = 0 predicts at the logged steps of aligned runs of one depth.

    Parameters
    ----------
    u : xarray.DataArray
        Measured ``u_i`` with dimensions ``eta``, ``delta``, ``step`` and
        ``component`` (any order); NaN past a run's stop.
    s, lam : array
        ``s_i`` and ``λ_i`` of u's components, in order.
    depth : int
        Depth L.

    Returns
    -------
    xarray.DataArray
        Dimensions ``(step, eta, delta, component)``: the exact decoupled gradient
        descent of THEORY §4 (:func:`lindyn.theory.gd_component`) from
        ``u_i(0) = e^{−Lδ}`` with each run's η and δ, NaN where u is NaN.
    """
    import xarray as xr

    step = np.asarray(u["step"].values, dtype=int)
    eta = np.asarray(u["eta"].values, dtype=float)[:, None, None]
    delta = np.asarray(u["delta"].values, dtype=float)[None, :, None]
    s = np.asarray(s, dtype=float)
    lam = np.asarray(lam, dtype=float)
    values = theory.gd_component(s, lam, depth, eta, delta, int(step.max()))[step]
    dims = ("step", "eta", "delta", "component")
    predicted = xr.DataArray(values, dims=dims, coords={d: u[d].values for d in dims})
    return predicted.where(u.notnull())


def crossing_time(u: np.ndarray, rho: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """First time ``u ≥ f·ρ``, interpolated linearly between the integer steps around it.

    Parameters
    ----------
    u : ndarray
        Trajectories at every step (step axis first); NaN past a run's stop.
    rho : ndarray
        Targets, broadcastable to ``u.shape[1:]``.
    fractions : sequence of float
        The fractions f.

    Returns
    -------
    ndarray
        Shape ``(len(fractions), *u.shape[1:])``: ``k − 1 + (fρ − u_{k−1})/(u_k − u_{k−1})``
        with k the first step with ``u_k ≥ fρ`` (:func:`lindyn.theory.first_crossing`),
        0 if ``u_0 ≥ fρ``, NaN if never.
    """
    u = np.asarray(u, dtype=float)
    f = np.asarray(fractions, dtype=float)
    rho = np.broadcast_to(np.asarray(rho, dtype=float), u.shape[1:])
    first = theory.first_crossing(u, rho, f, axis=0)
    level = f.reshape(-1, *[1] * rho.ndim) * rho
    k = np.clip(first, 1, None)
    after = np.take_along_axis(u[None], k[:, None], axis=1)[:, 0]
    before = np.take_along_axis(u[None], k[:, None] - 1, axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = k - 1 + (level - before) / (after - before)
    return np.where(first < 0, np.nan, np.where(first == 0, 0.0, t))


def _off_diagonal_norm(stats: Stats) -> float:
    """``‖UᵀΣxU − diag‖₂``: the ε of Assumption 1 in the paper's unnormalised form."""
    m = stats.U.T @ stats.sigma_x @ stats.U
    return float(np.linalg.norm(m - np.diag(np.diag(m)), 2))


def departures(runs: xr.Dataset, stats: Stats) -> xr.Dataset:
    """The departures of one sweep's aligned runs from their ε = 0 predictions.

    Parameters
    ----------
    runs : xarray.Dataset
        A :func:`lindyn.sweep` of aligned runs with every step logged, dimensions
        ``depth, eta, delta``.
    stats : Stats
        The statistics of the sweep's dataset.

    Returns
    -------
    xarray.Dataset
        ``u_departure``, ``bound_violation`` (``depth, eta, delta, component``),
        ``crossing_shift`` (also ``fraction``), ``product_departure``,
        ``product_rate``, ``stop_step`` (``depth, eta, delta``) and the scalars
        ``eps_a1`` and ``eps_b`` (``‖UᵀΣxU − diag‖₂``). See the module docstring.
    """
    import xarray as xr

    step = np.asarray(runs["step"].values, dtype=int)
    if not np.array_equal(step, np.arange(step[-1] + 1)):
        raise ValueError("departures need every step logged (log_density=every_step_density(…))")
    n = min(int(stats.rank), int(runs.sizes["component"]), int(runs["width"].values))
    s, lam, rho = (np.asarray(a[:n], dtype=float) for a in (stats.s, stats.lam, stats.rho))
    fractions = np.asarray(runs["fraction"].values, dtype=float)
    per_depth = []
    for depth in runs["depth"].values:
        run = runs.sel(depth=depth)
        u = run["u"].isel(component=slice(0, n)).transpose("step", "eta", "delta", "component")
        predicted = epsilon_zero_prediction(u, s, lam, int(depth))
        rho_da = u["component"].copy(data=rho)
        u_dep = (np.abs(u - predicted) / rho_da).max("step")
        t_run = crossing_time(u.values, rho, fractions)
        t_zero = crossing_time(predicted.values, rho, fractions)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = (t_run - t_zero) / t_zero
        shift = np.where(np.isnan(t_run) & np.isfinite(t_zero), np.inf, shift)
        shift = np.where(t_zero > 0, shift, np.nan)
        shift_da = xr.DataArray(
            np.moveaxis(shift, 0, -1),
            dims=("eta", "delta", "component", "fraction"),
            coords={"eta": u["eta"], "delta": u["delta"], "component": u["component"]},
        )
        cross = (u * predicted).sum("component", skipna=False)
        square = (
            run["frobenius_norm_sq"] - 2 * cross + (predicted**2).sum("component", skipna=False)
        )
        distance = np.sqrt(square.clip(min=0))
        eta = run["eta"]
        rate = (distance / (eta * distance["step"].where(distance["step"] > 0))).max("step")
        per_depth.append(
            xr.Dataset(
                {
                    "u_departure": u_dep,
                    "crossing_shift": shift_da,
                    "bound_violation": run["bound_violation"].isel(component=slice(0, n)),
                    "product_departure": distance.max("step") / float(np.linalg.norm(rho)),
                    "product_rate": rate,
                    "stop_step": run["stop_step"],
                }
            )
        )
    out = xr.concat(per_depth, dim=runs["depth"])
    out = out.drop_vars([c for c in ("init", "width") if c in out.coords])
    out["eps_a1"] = float(stats.eps_a1)
    out["eps_b"] = _off_diagonal_norm(stats)
    out = out.assign_coords(fraction=fractions)
    return out


def measure(
    perturbation: Sequence[float],
    seeds: Sequence[int],
    depth: Sequence[int],
    eta: Sequence[float],
    delta: Sequence[float],
    *,
    d: int = default("departure.d"),
    p: int = default("departure.p"),
    n: int = default("departure.n"),
    max_steps: int = default("departure.max_steps"),
    budget_margin: float = default("departure.budget_margin"),
    tolerance: float = default("departure.tolerance"),
    kernel: str = "auto",
    log: Any = None,
) -> xr.Dataset:
    """Run the departure study: ``commuting`` data at each (perturbation, seed), measured.

    Parameters
    ----------
    perturbation : sequence of float
        The loader's ``perturbation`` (``‖B‖_F/‖Λ‖_F``), distinct, ≥ 0.
    seeds : sequence of int
        The loader's seeds.
    depth, eta, delta : sequence
        The grid of each sweep (aligned init, depth ≥ 2).
    d, p, n : int
        The loader's dimensions and sample count.
    max_steps, budget_margin
        Each cell runs the theory's step budget for its 0.9 crossings
        (:func:`lindyn.regime.step_budget`) times ``budget_margin``, capped by
        ``max_steps``; every step is logged.
    tolerance : float
        The departure within which a prediction holds (recorded for the fit).
    kernel : str
        Engine of :func:`lindyn.sweep`.
    log : logging.Logger, optional
        Progress messages.

    Returns
    -------
    xarray.Dataset
        :func:`departures` with the extra dimensions ``perturbation`` and
        ``seed``; ``eps_a1`` and ``eps_b`` per (perturbation, seed); the
        settings and provenance in ``attrs`` (``kind`` :data:`DEPARTURE_KIND`).
    """
    import xarray as xr

    from lindyn.datasets import load_dataset
    from lindyn.provenance import provenance
    from lindyn.stats import dataset_stats
    from lindyn.sweeps import sweep

    perturbation = [float(v) for v in perturbation]
    seeds = [int(v) for v in seeds]
    if not perturbation or len(set(perturbation)) != len(perturbation):
        raise ValueError(f"perturbation needs distinct values, got {perturbation}")
    if min(int(L) for L in depth) < 2:
        raise ValueError(f"depth must be >= 2 (the aligned dynamics), got {list(depth)}")
    density = every_step_density(max_steps)
    rows = []
    for size in perturbation:
        cells = []
        for seed in seeds:
            data = load_dataset("commuting", d=d, p=p, n=n, perturbation=size, seed=seed)
            stats = dataset_stats(data.X, data.Y, meta=data.meta)
            runs = sweep(
                stats,
                list(depth),
                list(eta),
                list(delta),
                "aligned",
                max_steps=max_steps,
                log_density=density,
                max_components=stats.m,
                budget="theory",
                budget_margin=budget_margin,
                kernel=kernel,
                progress=False,
            )
            cells.append(departures(runs, stats))
            if log is not None:
                log.info("perturbation %g, seed %d: ε_A1 = %.3g", size, seed, stats.eps_a1)
        rows.append(xr.concat(cells, dim=xr.DataArray(seeds, dims="seed", name="seed")))
    out = xr.concat(rows, dim=xr.DataArray(perturbation, dims="perturbation", name="perturbation"))
    settings = {
        "perturbation": perturbation,
        "seeds": seeds,
        "depth": [int(L) for L in depth],
        "eta": [float(v) for v in eta],
        "delta": [float(v) for v in delta],
        "d": d,
        "p": p,
        "n": n,
        "max_steps": max_steps,
        "budget_margin": budget_margin,
        "tolerance": tolerance,
    }
    out.attrs = {"kind": DEPARTURE_KIND, "settings": json.dumps(settings), **provenance()}
    return out


# ------------------------------------------------------------------ the law


def cell_measures(ds: xr.Dataset) -> xr.Dataset:
    """The measures of :data:`MEASURES` per (perturbation, seed, depth, η, δ).

    Reductions over components and fractions skip NaN (a bound that does not
    apply, a crossing past the run's stop); ``+inf`` (a crossing the run never
    makes although ε = 0 does) is kept: it exceeds every tolerance.
    """
    import xarray as xr

    shift = np.abs(ds["crossing_shift"])
    return xr.Dataset(
        {
            "u_departure": ds["u_departure"].max("component"),
            "crossing_shift": shift.sel(fraction=0.5, method="nearest", drop=True).max("component"),
            "crossing_shift_all": shift.max(("component", "fraction")),
            "bound_violation": ds["bound_violation"].max("component"),
            "product_departure": ds["product_departure"],
            "eps_a1": ds["eps_a1"],
        }
    )


class PowerLaw(NamedTuple):
    """``y ≈ C·x^α`` fitted on the logarithms."""

    alpha: float
    alpha_se: float  # the regression's standard error
    c: float
    c_se: float  # C times the standard error of log C
    points: int
    rms_log10: float  # residual root mean square, in decades

    def at(self, x: Any) -> np.ndarray:
        """The law's value at x."""
        return self.c * np.asarray(x, dtype=float) ** self.alpha

    def inverse(self, y: float) -> float:
        """The x at which the law reaches y (NaN without a fit or with α ≤ 0)."""
        if not (math.isfinite(self.alpha) and self.alpha > 0 and self.c > 0):
            return math.nan
        return float((y / self.c) ** (1.0 / self.alpha))


_NO_FIT = PowerLaw(math.nan, math.nan, math.nan, math.nan, 0, math.nan)


def _least_squares(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients, their standard errors and the residual RMS of an OLS fit."""
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    dof = target.size - design.shape[1]
    sigma2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    return coef, np.sqrt(np.clip(np.diag(cov), 0, None)), float(np.sqrt(np.mean(resid**2)))


def fit_power_law(
    x: Any, y: Any, floor: float = 0.0, groups: Any = None
) -> tuple[PowerLaw, np.ndarray]:
    """Fit ``y ≈ C_g·x^α`` by least squares on ``log y``, one α, one ``C_g`` per group.

    Parameters
    ----------
    x, y : array_like
        Same shape; points with ``x ≤ 0`` or a non-finite or ``≤ floor`` y are
        left out.
    floor : float
        Rounding level of y.
    groups : array_like, optional
        A label per point (e.g. its grid cell); default: one group.

    Returns
    -------
    law : PowerLaw
        α, and the largest group's C (with its standard error).
    prefactors : ndarray
        ``C_g`` per group in the order of ``np.unique(groups)`` (NaN: no point).
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    g = np.zeros(x.size, dtype=int) if groups is None else np.asarray(groups).ravel()
    labels, index = np.unique(g, return_inverse=True)
    keep = (x > 0) & np.isfinite(y) & (y > floor)
    prefactors = np.full(labels.size, np.nan)
    present = np.unique(index[keep])
    if keep.sum() < present.size + 2 or np.ptp(np.log(x[keep])) == 0:
        return _NO_FIT, prefactors
    columns = np.searchsorted(present, index[keep])
    design = np.zeros((int(keep.sum()), 1 + present.size))
    design[:, 0] = np.log(x[keep])
    design[np.arange(columns.size), 1 + columns] = 1.0
    coef, se, rms = _least_squares(design, np.log(y[keep]))
    prefactors[present] = np.exp(coef[1:])
    top = int(np.argmax(coef[1:]))
    c = float(np.exp(coef[1 + top]))
    law = PowerLaw(float(coef[0]), float(se[0]), c, c * float(se[1 + top]), int(keep.sum()), rms)
    return law, prefactors


def eps_10(eps: np.ndarray, values: np.ndarray, tolerance: float) -> tuple[float, bool]:
    """The largest ε up to which every value stays within ``tolerance``.

    Parameters
    ----------
    eps : ndarray
        ``ε_A1`` per perturbation (leading axis of ``values``), increasing.
    values : ndarray
        The measure, perturbation first; NaN skipped, ``+inf`` a failure.
    tolerance : float

    Returns
    -------
    eps_10 : float
        The largest grid ε with every value at it and below within tolerance
        (0 if the first fails).
    whole_grid : bool
        Whether the whole grid is within tolerance (then the true ε_10% is larger).
    """
    values = np.asarray(values, dtype=float).reshape(len(eps), -1)
    bad = np.any(np.where(np.isnan(values), False, values > tolerance), axis=1)
    if not bad.any():
        return float(eps[-1]), True
    first = int(np.argmax(bad))
    return (float(eps[first - 1]) if first > 0 else 0.0), False


def fit_table(
    ds: xr.Dataset,
    tolerance: float = default("departure.tolerance"),
    bootstrap: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """The fitted law per measure: per (depth, η, δ) cell and pooled per depth.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`measure` Dataset.
    tolerance : float
        The departure within which a prediction counts as holding.
    bootstrap : int
        Resamplings of the seeds for ``alpha_boot_sd`` (0: none).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per measure, depth and cell (``eta``, ``delta``; NaN on the pooled
        rows, ``cell`` "all"): ``alpha``, ``alpha_se``, ``alpha_boot_sd``, ``C``,
        ``C_se``, ``points``, ``rms_log10``, ``eps10_fit`` (``(tolerance/C)^{1/α}``),
        ``eps10_measured`` and ``whole_grid`` (:func:`eps_10`; ε_A1 is the largest
        over the seeds at each perturbation).
    """
    import pandas as pd

    cells = cell_measures(ds).sortby("perturbation")
    eps = cells["eps_a1"]  # (perturbation, seed)
    eps_grid = eps.max("seed").values
    rng = np.random.default_rng(seed)
    n_seeds = cells.sizes["seed"]
    resamples = [rng.integers(0, n_seeds, n_seeds) for _ in range(bootstrap)] if n_seeds > 1 else []
    rows = []
    for name in MEASURES:
        for depth in cells["depth"].values:
            sub = cells[name].sel(depth=depth).transpose("perturbation", "seed", "eta", "delta")
            if not np.isfinite(sub.values).any() or np.all(np.isnan(sub.values)):
                continue
            x = np.broadcast_to(
                eps.transpose("perturbation", "seed").values[..., None, None], sub.shape
            )
            grid_index = np.broadcast_to(
                np.arange(sub.sizes["eta"] * sub.sizes["delta"]).reshape(
                    1, 1, sub.sizes["eta"], sub.sizes["delta"]
                ),
                sub.shape,
            )
            y = sub.values

            def fit(
                x_: np.ndarray, y_: np.ndarray, g_: Any = None, floor: float = FLOORS[name]
            ) -> PowerLaw:
                return fit_power_law(x_, y_, floor, g_)[0]

            pooled = fit(x, y, grid_index)
            boot = [fit(x[:, r], y[:, r], grid_index[:, r]).alpha for r in resamples]
            boot_sd = float(np.nanstd(boot, ddof=1)) if len(boot) > 1 else math.nan
            eps10, whole = eps_10(eps_grid, y, tolerance)
            rows.append(
                _row(
                    name, depth, math.nan, math.nan, "all", pooled, boot_sd, eps10, whole, tolerance
                )
            )
            for i, e in enumerate(sub["eta"].values):
                for j, dl in enumerate(sub["delta"].values):
                    law = fit(x[..., i, j], y[..., i, j])
                    boot = [fit(x[:, r, i, j], y[:, r, i, j]).alpha for r in resamples]
                    boot_sd = float(np.nanstd(boot, ddof=1)) if len(boot) > 1 else math.nan
                    eps10, whole = eps_10(eps_grid, y[..., i, j], tolerance)
                    rows.append(
                        _row(name, depth, e, dl, "cell", law, boot_sd, eps10, whole, tolerance)
                    )
    return pd.DataFrame(rows)


def _row(
    name: str,
    depth: Any,
    eta: float,
    delta: float,
    cell: str,
    law: PowerLaw,
    boot_sd: float,
    eps10: float,
    whole: bool,
    tolerance: float,
) -> dict[str, Any]:
    return {
        "measure": name,
        "depth": int(depth),
        "cell": cell,
        "eta": float(eta),
        "delta": float(delta),
        "alpha": law.alpha,
        "alpha_se": law.alpha_se,
        "alpha_boot_sd": boot_sd,
        "C": law.c,
        "C_se": law.c_se,
        "points": law.points,
        "rms_log10": law.rms_log10 / math.log(10) if math.isfinite(law.rms_log10) else math.nan,
        "eps10_fit": law.inverse(tolerance),
        "eps10_measured": eps10,
        "whole_grid": bool(whole),
    }


class Theorem1Check(NamedTuple):
    """Theorem 1's bound ``‖W_ε(t) − W_0(t)‖ ≤ εCte^{Kt}`` held against the runs (one depth)."""

    alpha: float  # fitted exponent of the product departure in ε = ‖B‖₂
    alpha_se: float
    linear_ratio: float  # median departure/‖B‖₂ at the smallest over the second-smallest ε > 0
    constant: float  # smallest C with D(t) ≤ C‖B‖₂t for every run and step (K = 0)
    holds: bool  # departure O(‖B‖) as ‖B‖ → 0: α ≥ 1 within 2 s.e. and ratio within 10 %


def theorem1_check(ds: xr.Dataset, depth: int = 2) -> Theorem1Check:
    """Hold the product departure against Theorem 1's form (module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`measure` Dataset.
    depth : int
        The theorem is for depth 2.
    """
    sub = ds.sel(depth=depth).sortby("perturbation")
    eps_b = sub["eps_b"]
    dep = sub["product_departure"]
    x = np.broadcast_to(
        eps_b.values[..., None, None], dep.transpose("perturbation", "seed", ...).shape
    )
    y = dep.transpose("perturbation", "seed", ...).values
    cell = np.broadcast_to(np.arange(y[0, 0].size).reshape(y.shape[2:]), y.shape)
    law, _ = fit_power_law(x, y, FLOORS["product_departure"], cell)
    positive = [p for p in sub["perturbation"].values if p > 0]
    ratio = math.nan
    if len(positive) >= 2:
        first, second = ((dep / eps_b).sel(perturbation=v) for v in positive[:2])
        ratio = float(np.nanmedian(first.values) / np.nanmedian(second.values))
    with np.errstate(divide="ignore", invalid="ignore"):
        constant = float(
            np.nanmax((sub["product_rate"] / eps_b).where(sub["perturbation"] > 0).values)
        )
    holds = (
        math.isfinite(law.alpha)
        and law.alpha + 2 * law.alpha_se >= 1.0
        and math.isfinite(ratio)
        and abs(ratio - 1.0) <= 0.1
    )
    return Theorem1Check(law.alpha, law.alpha_se, ratio, constant, bool(holds))


# ------------------------------------------------------------------ stores


def write_departure(ds: xr.Dataset, store: Any, fit_csv: Any) -> pd.DataFrame:
    """Write the study's store (atomically, checksummed) and its fitted law as CSV.

    Returns
    -------
    pandas.DataFrame
        The fit (:func:`fit_table`) with the tolerance the settings record.
    """
    from lindyn.store import write_atomically, write_store

    write_store(ds, store)
    table = fit_table(ds, **_tolerance(ds))
    write_atomically(fit_csv, lambda tmp: table.to_csv(tmp, index=False))
    return table


def _tolerance(ds: xr.Dataset) -> dict[str, float]:
    settings = json.loads(ds.attrs.get("settings", "{}"))
    return {"tolerance": float(settings["tolerance"])} if "tolerance" in settings else {}


def open_departure(path: Any) -> xr.Dataset:
    """Open a departure store, checking it is whole and one (:func:`lindyn.store.open_store`)."""
    from lindyn.store import open_store

    return open_store(
        path, "departure", kind=DEPARTURE_KIND, required=("u_departure", "eps_a1", "settings")
    )


def study_fit(ds: xr.Dataset) -> pd.DataFrame:
    """:func:`fit_table` at the tolerance the store's settings record."""
    return fit_table(ds, **_tolerance(ds))
