"""Generalisation along the gradient-descent path, against the classical estimators.

The paper's point is that the sequential path is an implicit regulariser: early
stopped, gradient descent on a deep linear network returns (near) reduced-rank
solutions. What a regulariser is for is the loss on data it was not fitted to.
Every dataset with a held-out test set (:class:`lindyn.stats.HeldOut`) gives it
exactly for any ``W``, from the test set's statistics alone; the sweeps log it
at every logged step (``test_loss``). This module sets it against the
estimators a statistician would reach for, all fitted on the training
statistics and evaluated on the same test statistics:

``zero``
    ``W = 0`` (the test targets' second moment, halved).
``ols``
    Least squares, ``W = Σx⁺Σxy``.
``ridge``
    ``W_γ = (Σx + γI)⁻¹Σxy`` over :data:`RIDGE_GRID` (``γ`` relative to
    ``λ_max(Σx)``).
``rrr``
    Reduced-rank regression of each rank ``k`` (THEORY §8), the solutions the
    path visits when the orders by ``s_i`` and by ``s_i²/λ_i`` agree.
``pca``
    Principal-component regression: least squares on the top ``k`` principal
    directions of the inputs, ``W = Q_k diag(1/μ_k) Q_kᵀΣxy``.

and the path itself: per run, the smallest test loss over its logged steps
(early stopping with an oracle on the test set, as the other estimators' best
parameter is chosen on it too), the step where it occurs, the training loss
there, and the test loss at the run's last logged step.

:func:`study` is the pipeline's generalisation study (rule ``generalisation``,
config ``generalisation``): aligned runs of a few depths, run until they
converge or reach ``max_steps`` (not stopped at the crossings, as the grid's
runs are by default), so that each path's whole course, overfitting included,
is measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lindyn.runs import USABLE_STATUSES
from lindyn.stats import Stats

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "BASELINES",
    "KIND",
    "RIDGE_GRID",
    "SUMMARY_COLUMNS",
    "baselines",
    "generalisation",
    "open_study",
    "path_losses",
    "study",
    "summary",
]

# The `kind` attribute of a generalisation study's store, checked when it is read.
KIND = "lindyn.generalisation"

# Ridge penalties γ / λ_max(Σx): eight decades, four values a decade.
RIDGE_GRID = np.logspace(-6, 2, 33)
# The estimators of `baselines`, in the order they are listed.
BASELINES = ("zero", "ols", "ridge", "rrr", "pca")
# The columns of `summary`.
SUMMARY_COLUMNS = ("method", "parameter", "test_loss", "train_loss", "step", "at_stop")


def _estimators(stats: Stats) -> list[tuple[str, float, np.ndarray]]:
    """Every baseline's (method, parameter, W), fitted on the training statistics."""
    mu, Q, sigma_xy = stats.mu, stats.Q, stats.sigma_xy
    d, p = sigma_xy.shape
    projected = Q.T @ sigma_xy  # Σxy in the eigenbasis of Σx
    out = [("zero", np.nan, np.zeros((d, p))), ("ols", np.nan, stats.rrr_coef)]
    top = mu[0] if mu.size and mu[0] > 0 else 1.0
    for gamma in RIDGE_GRID:
        out.append(("ridge", float(gamma), Q @ (projected / (mu + gamma * top)[:, None])))
    for k in range(1, min(d, p) + 1):
        out.append(("rrr", float(k), stats.w_rrr(k)))
    # Σx⁺'s cut-off (lindyn.stats): directions below it carry no usable input variance.
    usable = int(np.sum(mu > top * max(d, 1) * np.finfo(float).eps))
    for k in range(1, usable + 1):
        out.append(("pca", float(k), Q[:, :k] @ (projected[:k] / mu[:k, None])))
    return out


def baselines(stats: Stats) -> xr.Dataset:
    """Training and test loss of every classical estimator (see the module docstring).

    Parameters
    ----------
    stats : Stats
        With a test set (``stats.held_out``).

    Returns
    -------
    xarray.Dataset
        Dim ``baseline``; coords ``method`` (one of :data:`BASELINES`) and
        ``parameter`` (γ/λ_max for ridge, the rank k for rrr and pca, NaN
        otherwise); variables ``train_loss`` and ``test_loss``.

    Raises
    ------
    ValueError
        If the dataset has no test set.
    """
    import xarray as xr

    from lindyn.theory import loss

    if stats.held_out is None:
        raise ValueError("the dataset has no test set: give it a test_fraction or a test file")
    fitted = _estimators(stats)
    W = np.stack([w for _, _, w in fitted])
    return xr.Dataset(
        {
            "train_loss": ("baseline", loss(W, stats.sigma_x, stats.sigma_xy, stats.yy)),
            "test_loss": ("baseline", stats.held_out.loss(W)),
        },
        coords={
            "baseline": np.arange(len(fitted)),
            "method": ("baseline", [method for method, _, _ in fitted]),
            "parameter": ("baseline", [parameter for _, parameter, _ in fitted]),
        },
    )


def path_losses(runs: xr.Dataset) -> xr.Dataset:
    """Each run's best test loss along its path, where it occurs, and its final test loss.

    Parameters
    ----------
    runs : xarray.Dataset
        Combined runs (:func:`lindyn.aggregate.combine_blocks`) with ``test_loss``,
        ``loss`` and ``status``.

    Returns
    -------
    xarray.Dataset
        Over the runs' grid dims: ``best_test_loss``, ``best_step``,
        ``train_loss_at_best``, ``final_test_loss`` and ``best_at_stop`` (1 where
        the best is the run's last logged step: no early stopping was needed
        before the run's stop rule ended it); NaN for runs that diverged or are
        missing.
    """
    import xarray as xr

    usable = runs["status"].isin(USABLE_STATUSES)
    test = runs["test_loss"].where(usable)
    best = test.min("step")
    at_best = test == best
    step = runs["step"]
    best_step = step.where(at_best).min("step")
    logged = test.notnull()
    last = step.where(logged).max("step")
    out = xr.Dataset(
        {
            "best_test_loss": best,
            "best_step": best_step,
            "train_loss_at_best": runs["loss"].where(step == best_step).max("step"),
            "final_test_loss": test.where(step == last).max("step"),
            # the best is the last logged step: the test loss was still falling at the stop
            "best_at_stop": (best_step == last).where(best.notnull()),
        }
    )
    out["best_test_loss"].attrs = {"long_name": "smallest test loss over the logged steps"}
    out["best_step"].attrs = {"long_name": "first logged step with the smallest test loss"}
    return out


def generalisation(stats: Stats, runs: xr.Dataset) -> xr.Dataset:
    """:func:`baselines` and :func:`path_losses` in one Dataset, with the runs' status.

    Parameters
    ----------
    stats : Stats
        With a test set.
    runs : xarray.Dataset
        The dataset's combined runs.

    Returns
    -------
    xarray.Dataset
    """
    out = baselines(stats).merge(path_losses(runs))
    out["status"] = runs["status"]
    out.attrs["n_test"] = stats.held_out.n
    out.attrs["ridge_grid"] = "γ/λ_max(Σx) in 10^-6 … 10^2, four a decade"
    return out


def study(
    stats: Stats,
    depth: list[int],
    eta: float,
    delta: float,
    width: int,
    max_steps: int,
    log_density: int,
    tol: float,
) -> xr.Dataset:
    """The generalisation study of one dataset: its paths to convergence and the estimators.

    Parameters
    ----------
    stats : Stats
        With a test set.
    depth : list of int
        Depths of the paths (aligned init).
    eta, delta : float
        Step size and init scale of every path.
    width : int
        Hidden width.
    max_steps, log_density, tol : int, int, float
        Each path runs until it converges (``tol``) or diverges, or for
        ``max_steps`` steps (:class:`lindyn.sweeps.RunSettings`).

    Returns
    -------
    xarray.Dataset
        :func:`generalisation` of the paths, plus their logged ``path_test_loss``
        and ``path_train_loss`` (dims ``depth``, ``step``) and ``stop_step``.
    """
    from lindyn.provenance import provenance
    from lindyn.sweeps import sweep

    runs = sweep(
        stats,
        depth,
        eta,
        delta,
        "aligned",
        width=width,
        max_steps=max_steps,
        log_density=log_density,
        tol=tol,
        budget="fixed",
        stop="converged",
    ).squeeze(["eta", "delta"])
    out = generalisation(stats, runs)
    out["path_test_loss"] = runs["test_loss"]
    out["path_train_loss"] = runs["loss"]
    out["stop_step"] = runs["stop_step"]
    out.attrs |= {
        "kind": KIND,
        "dataset": runs.attrs["dataset"],
        "stats_hash": stats.stats_hash,
        "settings": runs.attrs["settings"],
        "eta": eta,
        "delta": delta,
        "width": width,
        **provenance(),
    }
    return out


def summary(ds: xr.Dataset) -> pd.DataFrame:
    """The best of each estimator and of the path of each depth, by test loss.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`generalisation` (or its stored copy).

    Returns
    -------
    pandas.DataFrame
        One row per estimator (``method``: a baseline, or ``gd L=…``): its best
        ``parameter`` (γ/λ_max, rank k, or the run's cell), ``test_loss``,
        ``train_loss``, and for the paths ``step`` and ``at_stop`` (1: the best
        is the run's last logged step); sorted by test loss, the first row the
        winner.
    """
    rows = []
    fitted = ds[["train_loss", "test_loss"]]
    for method in BASELINES:
        chosen = fitted.isel(baseline=np.flatnonzero(ds["method"].values == method))
        if not chosen.sizes["baseline"]:
            continue
        i = int(chosen["test_loss"].argmin("baseline"))
        row = chosen.isel(baseline=i)
        rows.append(
            {
                "method": method,
                "parameter": _parameter(method, float(row["parameter"])),
                "test_loss": float(row["test_loss"]),
                "train_loss": float(row["train_loss"]),
                "step": np.nan,
                "at_stop": np.nan,
            }
        )
    for depth in ds["depth"].values:
        at = ds.sel(depth=depth)
        best = at["best_test_loss"]
        if not best.notnull().any():
            continue
        cell = {dim: at[dim].values[i] for dim, i in _argmin(best).items()}
        # a study's paths have one cell, its settings in the attributes
        where = cell or {key: ds.attrs[key] for key in ("eta", "delta") if key in ds.attrs}
        rows.append(
            {
                "method": f"gd L={depth}",
                "parameter": ", ".join(f"{dim}={_text(value)}" for dim, value in where.items()),
                "test_loss": float(best.sel(cell)),
                "train_loss": float(at["train_loss_at_best"].sel(cell)),
                "step": float(at["best_step"].sel(cell)),
                "at_stop": float(at["best_at_stop"].sel(cell)),
            }
        )
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return frame.sort_values("test_loss", kind="stable", ignore_index=True)


def open_study(path: Any, expected: Mapping[str, Any]) -> xr.Dataset:
    """Open a generalisation study, checked to be whole and the one ``expected`` describes.

    Parameters
    ----------
    path : path-like
        The study's store.
    expected : mapping
        Attributes it must record (its ``dataset``, the ``stats_hash`` of its statistics).

    Raises
    ------
    lindyn.store.StoreError
        Naming the store, if it is damaged or not the one expected.
    """
    from lindyn.store import open_store

    return open_store(path, "generalisation study", kind=KIND, expected=expected)


def _argmin(da: xr.DataArray) -> dict[str, int]:
    flat = int(np.nanargmin(da.values))
    return dict(zip(da.dims, np.unravel_index(flat, da.shape), strict=True))


def _parameter(method: str, value: float) -> str:
    if method == "ridge":
        return f"γ/λ_max={value:.3g}"
    if method in ("rrr", "pca"):
        return f"k={int(value)}"
    return ""


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)
