"""What the claims measure on a dataset's stores, and the ε = 0 predictions they meet.

Every function takes the loaded stores (:class:`~lindyn.report.loading.DatasetResults`
or one of its datasets) and returns arrays or numbers; none decides a verdict.
Unusable runs (status not in :data:`~lindyn.runs.USABLE_STATUSES`) are
masked; NaN (a crossing never reached, a bound that does not apply) is skipped
by every reduction here, never turned into a boolean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lindyn.learning import sequential_pairs
from lindyn.report.loading import DatasetResults
from lindyn.runs import FRACTIONS, MISSING, USABLE_STATUSES

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "CENTRINGS",
    "CrossingCount",
    "EigengapFractions",
    "aligned",
    "count",
    "crossing_count",
    "crossings",
    "eigengap_fractions",
    "eps_by_centring",
    "eps_table",
    "epsilon_zero_deviation",
    "epsilon_zero_path",
    "epsilon_zero_u",
    "has",
    "maximum",
    "mean",
    "median",
    "n_components",
    "orders_disagree",
    "path_visits",
    "reference",
    "relative_width",
    "separated",
    "sequential",
    "status_of",
    "target_norms",
    "usable",
]


# ------------------------------------------------------------------ reductions over finite values


def _finite(da: xr.DataArray | np.ndarray) -> np.ndarray:
    values = np.asarray(getattr(da, "values", da), dtype=float).ravel()
    return values[np.isfinite(values)]


def median(da: xr.DataArray | np.ndarray) -> float:
    """Median of the finite values (NaN if none)."""
    values = _finite(da)
    return float(np.median(values)) if values.size else math.nan


def maximum(da: xr.DataArray | np.ndarray) -> float:
    """Largest finite value (NaN if none)."""
    values = _finite(da)
    return float(values.max()) if values.size else math.nan


def mean(da: xr.DataArray | np.ndarray) -> float:
    """Mean of the finite values (NaN if none): a fraction when the values are 0/1."""
    values = _finite(da)
    return float(values.mean()) if values.size else math.nan


def count(da: xr.DataArray | np.ndarray) -> int:
    """Number of finite values."""
    return int(_finite(da).size)


# ------------------------------------------------------------------ selection


def usable(ds: xr.Dataset) -> xr.DataArray:
    """Runs whose measurements count."""
    return ds["status"].isin(list(USABLE_STATUSES))


def has(ds: xr.Dataset | None, **coords: Any) -> bool:
    """Whether ``ds`` exists and has every given coordinate value."""
    if ds is None:
        return False
    return all(dim in ds.coords and np.any(ds[dim].values == v) for dim, v in coords.items())


def status_of(ds: xr.Dataset, cell: Mapping[str, Any]) -> str:
    """The status of one grid cell ('missing' if the cell is not in the store)."""
    status = ds["status"]
    try:
        return str(status.sel({d: v for d, v in cell.items() if d in status.dims}).values)
    except KeyError:
        return MISSING


def reference(ds: xr.Dataset | None, depth: int, init: str = "aligned") -> dict | None:
    """The usable cell closest to the theory's limit (:func:`lindyn.plots.reference_cell`)."""
    if ds is None:
        return None
    from lindyn.plots import reference_cell

    return reference_cell(ds, depth, init)


def aligned(ds: xr.Dataset | None, depth: int = 2) -> xr.Dataset | None:
    """Aligned-init cells of one depth, unusable runs masked (None if there are none).

    ``bounds.zarr`` has depth 2 only and no ``depth`` axis: it is taken as it is.
    """
    if ds is None or "status" not in ds or not has(ds, init="aligned"):
        return None
    if "depth" in ds.dims:
        if not has(ds, depth=depth):
            return None
        ds = ds.sel(depth=depth)
    elif depth != 2:
        return None
    sub = ds.sel(init="aligned")
    return sub.where(usable(sub))


def n_components(res: DatasetResults, depth: int) -> int:
    """Components a depth-L run can learn: s_i > 0, at most the hidden width r if L ≥ 2."""
    s = np.asarray(res.stats["s"].values, dtype=float)
    positive = int(np.sum(s > 1e-12 * max(s.max(initial=0.0), 1e-300)))
    n = min(res.phase_times.sizes["component"], positive)
    if depth >= 2 and "width" in res.phase_times.coords:
        n = min(n, int(np.max(res.phase_times["width"].values)))
    return n


def crossings(
    phase: xr.Dataset, depth: int, n: int, init: str = "aligned", var: str = "t_measured"
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """t(0.1), t(0.5), t(0.9) of ``var`` for the usable runs of one depth, first n components."""
    sub = phase.sel(depth=depth)
    t = sub[var].where(usable(sub)).sel(init=init).isel(component=slice(0, n))
    return tuple(t.sel(fraction=f, method="nearest", drop=True) for f in FRACTIONS)


# ------------------------------------------------------------------ phase times


def sequential(
    phase: xr.Dataset, depth: int, n: int, var: str = "t_measured", disjoint: bool = False
) -> xr.DataArray:
    """Per consecutive pair and run: 1 if learned sequentially, 0 if not, NaN if unknown.

    Sequential: ``t_{i+1}(0.1) ≥ t_i(0.5)`` (component i+1 below 10 % of its target
    when i reaches half of its); with ``disjoint``, ``t_{i+1}(0.1) > t_i(0.9)``
    (:func:`lindyn.learning.sequential_pairs`). Pair (i, i+1) sits at component i.
    """
    return sequential_pairs(*crossings(phase, depth, n, var=var), disjoint=disjoint)


def separated(phase: xr.Dataset, n: int, var: str = "t_measured") -> xr.DataArray:
    """Per pair and depth-2 run: 1 if ``t_i(0.9) < t_{i+1}(0.1)``, 0 if not, NaN if unknown."""
    t10, _, t90 = crossings(phase, 2, n, var=var)
    nxt = t10.shift(component=-1)
    return (t90 < nxt).astype(float).where(t90.notnull() & nxt.notnull())


def relative_width(
    phase: xr.Dataset, depth: int, n: int, var: str = "t_measured", init: str = "aligned"
) -> xr.DataArray:
    """``(t(0.9) − t(0.1))/t(0.5)`` of the usable runs, first n components."""
    t10, t50, t90 = crossings(phase, depth, n, init=init, var=var)
    return ((t90 - t10) / t50.where(t50 > 0)).rename("relative_width")


class CrossingCount(NamedTuple):
    """Crossings the flow predicts, how many were measured, and why the others were not."""

    predicted: int  # finite t_flow: the ε = 0 flow crosses
    measured: int  # of those, with a measured crossing
    beyond_stop: int  # not measured, t_flow past the run's stop step (budget or convergence)
    missed: int  # not measured although t_flow is before the run's stop step

    def text(self) -> str:
        """E.g. '12 of 40 crossings measured, 28 past the runs' stop step'."""
        out = f"{self.measured} of {self.predicted} predicted crossings measured"
        if self.beyond_stop:
            out += f", {self.beyond_stop} past the run's stop step"
        if self.missed:
            out += f", {self.missed} not reached before it"
        return out


def crossing_count(
    res: DatasetResults, depth: int, n: int, fraction: float | None = None, **cells: Any
) -> CrossingCount:
    """Count the aligned runs' crossings of the first n components (all fractions by default).

    ``cells`` selects grid values (e.g. ``delta=4.0``). A crossing that the flow
    predicts past a run's stop step is counted as such, not dropped.
    """
    phase, traj = res.phase_times, res.trajectories
    sub = phase.sel(depth=depth, init="aligned").isel(component=slice(0, n))
    ok = usable(sub)
    if fraction is not None:
        sub = sub.sel(fraction=[fraction], method="nearest")
    stop = traj["stop_step"].sel(depth=depth, init="aligned")
    if cells:
        sub, ok = sub.sel(cells), ok.sel(cells)
        stop = stop.sel(cells)
    flow = sub["t_flow"].where(ok)
    predicted = flow.notnull()
    measured = predicted & sub["t_measured"].notnull()
    lost = predicted & ~measured
    beyond = lost & (flow > stop)
    return CrossingCount(
        int(predicted.sum()), int(measured.sum()), int(beyond.sum()), int((lost & ~beyond).sum())
    )


# ------------------------------------------------------------------ eigen-gaps


class EigengapFractions(NamedTuple):
    """How often the eigen-gap condition holds, and how often separation happens without it."""

    holds: float  # fraction of (pair, η, δ) cells with margin > 0 (NaN margins excluded)
    cells: int  # cells with a margin
    loose: float  # fraction of measured-separated pairs whose margin is ≤ 0
    separated: int  # measured-separated pairs with a margin


def eigengap_fractions(bounds2: xr.Dataset, measured: xr.DataArray) -> EigengapFractions:
    """The eigen-gap condition on the depth-2 aligned runs (:func:`aligned` of ``bounds``).

    ``measured`` is :func:`separated` of the same runs (1, 0 or NaN per pair). A
    NaN margin (the last component, which has no successor) is excluded from both
    fractions: it is neither a condition that holds nor one that fails.
    """
    margin = bounds2["eigengap_margin"].broadcast_like(bounds2["status"])
    positive = (margin > 0).astype(float).where(margin.notnull())
    apart = measured == 1
    loose = (margin <= 0).astype(float).where(margin.notnull() & apart)
    return EigengapFractions(mean(positive), count(positive), mean(loose), count(loose))


# ------------------------------------------------------------------ the ε = 0 predictions


def epsilon_zero_u(res: DatasetResults, depth: int) -> tuple[xr.DataArray, xr.DataArray] | None:
    """The aligned runs' ``u_i`` at their logged steps, and what ε = 0 predicts there.

    The prediction is the exact decoupled gradient descent of THEORY §4
    (:func:`lindyn.departure.epsilon_zero_prediction`) with the dataset's ``s_i``, ``λ_i`` and
    each run's η, δ: what the run would do if Assumption 1 held exactly. The
    aligned init sets the first r components only (also for L = 1): those are
    compared. Both are NaN past a run's stop step and for unusable runs.
    """
    from lindyn.departure import epsilon_zero_prediction

    traj = aligned(res.trajectories, depth)
    if traj is None:
        return None
    n = n_components(res, max(depth, 2))
    u = traj["u"].isel(component=slice(0, n))
    s = np.asarray(res.stats["s"].values[:n], dtype=float)
    lam = np.asarray(res.stats["lam"].values[:n], dtype=float)
    return u, epsilon_zero_prediction(u, s, lam, depth)


def epsilon_zero_deviation(res: DatasetResults, depth: int) -> xr.DataArray | None:
    """``max_t |u_i(t) − u_i^{ε=0}(t)|/ρ_i`` per aligned usable run and component."""
    pair = epsilon_zero_u(res, depth)
    if pair is None:
        return None
    u, predicted = pair
    rho = predicted["component"].copy(data=_rho(res, predicted.sizes["component"]))
    with np.errstate(invalid="ignore"):
        return (np.abs(u - predicted) / rho).max("step")


def _rho(res: DatasetResults, n: int) -> np.ndarray:
    stats = res.stats
    return np.asarray(stats["s"].values[:n], dtype=float) / np.asarray(
        stats["lam"].values[:n], dtype=float
    )


def _target(stats: xr.Dataset, k: int, target: str) -> np.ndarray:
    """``W_k^seq = U diag(ρ_1…ρ_k, 0…) Vᵀ`` or ``W_k^RRR = Σx⁺Σxy B_k B_kᵀ`` (``target``)."""
    from lindyn import theory

    if target == "seq":
        rho = np.asarray(stats["rho"], dtype=float)
        return theory.w_seq(stats["U"].values, stats["V"].values, rho, min(k, rho.size))
    basis = np.asarray(stats["rrr_basis"], dtype=float)[:, :k]
    return np.asarray(stats["rrr_coef"], dtype=float) @ basis @ basis.T


def _target_coordinates(
    stats: xr.Dataset, ks: Sequence[int], n: int, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """``c[k, i] = U_iᵀ T_k V_i`` for i < n, and ``‖T_k‖_F``."""
    u, v = np.asarray(stats["U"], dtype=float), np.asarray(stats["V"], dtype=float)
    coords, norms = np.zeros((len(ks), n)), np.zeros(len(ks))
    for j, k in enumerate(ks):
        t_k = _target(stats, k, target)
        coords[j] = np.einsum("di,dp,pi->i", u[:, :n], t_k, v[:, :n])
        norms[j] = np.linalg.norm(t_k)
    return coords, norms


def epsilon_zero_path(res: DatasetResults, depth: int, target: str) -> xr.DataArray | None:
    """``min_t ‖W^{ε=0}(t) − T_k‖/‖T_k‖`` over each aligned run's logged steps, per k.

    ``W^{ε=0}(t) = U diag(u^{ε=0}(t)) Vᵀ`` is the product the run would follow
    under ε = 0 (:func:`epsilon_zero_u`); ``T_k`` the dataset's own ``W_k^seq``
    or ``W_k^RRR`` (``target``: "seq" or "rrr"), as in the path store.
    """
    import xarray as xr

    pair = epsilon_zero_u(res, depth)
    if pair is None or res.path is None:
        return None
    u, predicted = pair
    ks = [int(k) for k in res.path["k"].values]
    coords, norms = _target_coordinates(res.stats, ks, predicted.sizes["component"], target)
    c = xr.DataArray(
        coords, dims=("k", "component"), coords={"k": ks, "component": predicted["component"]}
    )
    norm = xr.DataArray(norms, dims="k", coords={"k": ks})
    # ‖U diag(u) Vᵀ − T‖² = Σu_i² − 2Σu_i c_i + ‖T‖² (U, V orthonormal).
    square = (predicted**2).sum("component") - 2 * (predicted * c).sum("component") + norm**2
    distance = np.sqrt(square.clip(min=0)) / norm
    return distance.where(u.isel(component=0).notnull()).min("step")


# ------------------------------------------------------------------ the path


def path_visits(
    res: DatasetResults, depth: int, target: str, cell: Mapping[str, Any], tolerance: float
) -> tuple[list[int], list[int], dict[int, float]]:
    """Intermediate ranks k (1 ≤ k < K) and those visited within ``tolerance`` by one run.

    K is the largest rank the run at ``cell`` can reach: the number of ranks with
    a recorded distance, and at most the hidden width if ``cell`` has depth ≥ 2.
    The run of ``depth`` (same η, δ, init, seed) is measured on those ranks.
    """
    path = res.path
    sel = {d: v for d, v in cell.items() if d in path.dims}
    dist = path[f"min_rel_dist_{target}"].sel({**sel, "depth": depth})
    ref_dist = path[f"min_rel_dist_{target}"].sel({**sel, "depth": cell["depth"]})
    ks = [int(k) for k in ref_dist["k"].values if np.isfinite(ref_dist.sel(k=k).values)]
    if cell["depth"] >= 2 and "width" in cell:
        ks = [k for k in ks if k <= int(cell["width"])]
    inner = ks[:-1]
    values = {k: float(dist.sel(k=k).values) for k in inner}
    visited = [k for k, v in values.items() if math.isfinite(v) and v <= tolerance]
    return inner, visited, values


def orders_disagree(res: DatasetResults) -> list[int]:
    """Ranks k where the top-k sets by s_i and by s_i²/λ_i differ (THEORY §8)."""
    if res.stats is None or "orders_agree" not in res.stats:
        return []
    agree = np.asarray(res.stats["orders_agree"].values, dtype=bool)
    return [int(i) + 1 for i in np.flatnonzero(~agree)]


def target_norms(stats: xr.Dataset, k: Iterable[int]) -> xr.Dataset:
    """``‖W_k^seq‖_F``, ``‖W_k^RRR‖_F`` and ``‖W_k^seq − W_k^RRR‖_F`` along ``k``.

    ``W_k^seq = U diag(ρ_1…ρ_k, 0…) Vᵀ``; ``W_k^RRR = Σx⁺Σxy B_k B_kᵀ`` with ``B_k``
    the top-k eigenvectors of ``ΣxyᵀΣx⁺Σxy`` (the statistics store's ``rrr_coef``
    and ``rrr_basis``).
    """
    import xarray as xr

    ks = [int(x) for x in k]
    seq, rrr, diff = [], [], []
    for kk in ks:
        w_seq, w_rrr = _target(stats, kk, "seq"), _target(stats, kk, "rrr")
        seq.append(np.linalg.norm(w_seq))
        rrr.append(np.linalg.norm(w_rrr))
        diff.append(np.linalg.norm(w_seq - w_rrr))
    return xr.Dataset(
        {"seq_norm": ("k", seq), "rrr_norm": ("k", rrr), "seq_rrr_distance": ("k", diff)},
        coords={"k": ks},
    )


# ------------------------------------------------------------------ Table 1


CENTRINGS = ("raw", "centred")


def eps_by_centring(res: DatasetResults) -> dict[str, tuple[float, float]]:
    """``(ε_A1, ε_iso)`` of a dataset for each of :data:`CENTRINGS` (NaN if unknown).

    From the statistics store's ``eps_by_centring`` metadata (``lindyn dataset``
    computes both centrings), else only the store's own centring is known.
    """
    by = res.meta.get("eps_by_centring", {})
    out = {
        centring: (
            float(by.get(centring, {}).get("eps_a1", math.nan)),
            float(by.get(centring, {}).get("eps_iso", math.nan)),
        )
        for centring in CENTRINGS
    }
    if not by and res.stats is not None:
        out["centred" if res.meta.get("center") else "raw"] = (res.eps_a1, res.eps_iso)
    return out


def eps_table(results: Mapping[str, DatasetResults]) -> xr.Dataset:
    """ε_A1 and ε_iso, raw and centred, with dims ``(dataset, centring)`` (NaN if unknown)."""
    import xarray as xr

    values = np.array([list(eps_by_centring(res).values()) for res in results.values()])
    values = values.reshape(len(results), len(CENTRINGS), 2)
    return xr.Dataset(
        {
            "eps_a1": (("dataset", "centring"), values[..., 0]),
            "eps_iso": (("dataset", "centring"), values[..., 1]),
        },
        coords={"dataset": list(results), "centring": list(CENTRINGS)},
    )
