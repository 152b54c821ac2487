"""The xarray schema of lindyn's stores, atomic Zarr writes, validation on read.

Two kinds of store:

* a **statistics store** (``results/datasets/{dataset}.zarr``): Σx, Σxy, their
  decompositions, ``s``, ``lam``, ``rho``, ``eps_a1``, ``eps_iso``;
* a **run store** (``results/runs/…/{cell}.zarr``): one run's trajectory at the
  logged steps, its exact crossing steps, Theorem 3 violations, status.

Every store is written to a temporary sibling directory and renamed into place,
so a store at its final path is always complete; a killed writer leaves only a
``*.tmp-*`` directory, which the next write removes and which no reader accepts.

Stores written without xarray (statistics and run stores) record a checksum of
their content (:data:`lindyn.zarrio.CHECKSUM_ATTR`); ``read_run(..., verify=True)``
(the default with ``load=True``, and what aggregation uses) checks it, so a store
damaged after it was written (a chunk deleted or truncated, metadata edited) is
refused with a message naming it, rather than read as fill values.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn.provenance import provenance
from lindyn.stats import Stats
from lindyn.zarrio import (
    IntegrityError,
    Variables,
    read_group,
    read_verified,
    verify_group,
    write_group,
)

if TYPE_CHECKING:
    import xarray as xr

    from lindyn.simulate import RunRecord

__all__ = [
    "RUN_SCHEMA_VERSION",
    "RunArrays",
    "StoreError",
    "read_run",
    "read_run_arrays",
    "read_stats",
    "run_dataset",
    "stats_dataset",
    "write_run",
    "write_stats",
    "write_store",
]

RUN_SCHEMA_VERSION = 1
RUN_REQUIRED = ("u", "loss", "nuclear_norm", "singular_values", "crossing_step")
RUN_ATTRS = ("dataset", "depth", "eta", "delta", "seed", "init", "width", "status")


class StoreError(RuntimeError):
    """A store is missing, incomplete or damaged."""


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    write(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def write_store(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to a Zarr store at ``path`` atomically (temporary dir + rename).

    Parameters
    ----------
    ds : xarray.Dataset
    path : path-like
        Final location; an existing store there is replaced.

    Returns
    -------
    Path
    """
    for var in ds.variables.values():
        var.encoding = {}
    return _atomic(path, lambda tmp: ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True))


def _to_xarray(variables: Variables, attrs: dict[str, Any]) -> xr.Dataset:
    import xarray as xr

    coords = {name: spec for name, spec in variables.items() if spec[0] == (name,)}
    data = {name: spec for name, spec in variables.items() if name not in coords}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _recompute_hint(path: Path) -> str:
    return f"delete it (rm -r {path}) and rerun the pipeline to recompute it"


def _check_final(path: Path, what: str) -> None:
    """Refuse a temporary directory of an unfinished write, and a missing store."""
    if ".tmp-" in path.name:
        raise StoreError(
            f"{path} is the temporary directory of an unfinished or interrupted write, "
            f"not a {what} store; it is never read (the next write of "
            f"{path.name.split('.tmp-')[0]} removes it)"
        )
    if not path.exists():
        raise StoreError(f"{what} store {path} does not exist")


def _verify(path: Path, what: str) -> bool:
    """Check a store against its recorded content checksum (see lindyn.zarrio)."""
    try:
        return verify_group(path)
    except IntegrityError as err:
        raise StoreError(f"{what} store {path} is damaged: {err}; {_recompute_hint(path)}") from err


def _open(path: str | os.PathLike, what: str, lazy: bool = False) -> xr.Dataset:
    """Open a store; ``lazy`` gives Dask arrays, otherwise numpy (no Dask import)."""
    import xarray as xr

    path = Path(path)
    _check_final(path, what)
    try:
        return xr.open_zarr(path, consolidated=True, chunks={} if lazy else None)
    except Exception as err:  # zarr raises many kinds for damaged stores
        raise StoreError(
            f"{what} store {path} cannot be read ({err}); {_recompute_hint(path)}"
        ) from err


# ---------------------------------------------------------------- statistics


def _stats_content(stats: Stats) -> tuple[dict[str, Any], dict[str, Any]]:
    d, p, m = stats.d, stats.p, stats.m
    variables: dict[str, Any] = {
        "component": (("component",), np.arange(1, m + 1), {}),
        "feature": (("feature",), np.arange(d), {}),
        "feature_": (("feature_",), np.arange(d), {}),
        "target": (("target",), np.arange(p), {}),
        "eig": (("eig",), np.arange(1, d + 1), {}),
        "u_basis": (("u_basis",), np.arange(1, d + 1), {}),
        "v_basis": (("v_basis",), np.arange(1, p + 1), {}),
        "rrr_index": (("rrr_index",), np.arange(1, p + 1), {}),
        "sigma_x": (("feature", "feature_"), stats.sigma_x, {"long_name": "Σx = XᵀX/n"}),
        "sigma_xy": (("feature", "target"), stats.sigma_xy, {"long_name": "Σxy = XᵀY/n"}),
        "mu": (("eig",), stats.mu, {"long_name": "eigenvalues of Σx (descending)"}),
        "Q": (("feature", "eig"), stats.Q, {"long_name": "eigenvectors of Σx"}),
        "U": (("feature", "u_basis"), stats.U, {"long_name": "left singular basis of Σxy"}),
        "V": (("target", "v_basis"), stats.V, {"long_name": "right singular basis of Σxy"}),
        "s": (("component",), stats.s, {"long_name": "singular values s_i of Σxy"}),
        "lam": (("component",), stats.lam, {"long_name": "λ_i = (UᵀΣxU)_ii"}),
        "rho": (("component",), stats.rho, {"long_name": "ρ_i = s_i/λ_i"}),
        "order_rrr": (
            ("component",),
            stats.order_rrr + 1,
            {"long_name": "components by decreasing s_i²/λ_i (1-based)"},
        ),
        "orders_agree": (
            ("component",),
            stats.orders_agree,
            {"long_name": "top-k by s_i and by s_i²/λ_i coincide (k = component)"},
        ),
        "rrr_coef": (("feature", "target"), stats.rrr_coef, {"long_name": "Σx⁺Σxy"}),
        "rrr_basis": (
            ("target", "rrr_index"),
            stats.rrr_basis,
            {"long_name": "eigenvectors of ΣxyᵀΣx⁺Σxy (descending)"},
        ),
        "rrr_gain": (
            ("rrr_index",),
            stats.rrr_gain,
            {"long_name": "eigenvalues of ΣxyᵀΣx⁺Σxy (descending)"},
        ),
        "yy": ((), stats.yy, {"long_name": "tr(YᵀY)/n"}),
        "eps_a1": ((), stats.eps_a1, {"long_name": "ε_A1 (Frobenius, not squared)"}),
        "eps_iso": ((), stats.eps_iso, {"long_name": "ε_iso (Frobenius, not squared)"}),
        "rank": ((), stats.rank, {"long_name": "numerical rank of Σxy"}),
    }
    if stats.sigma_xc is not None:
        variables["sigma_xc"] = (
            ("feature", "feature_"),
            stats.sigma_xc,
            {"long_name": "XᵀX_clean/n"},
        )
        variables["cc"] = ((), stats.cc, {"long_name": "tr(X_cleanᵀX_clean)/n"})
    attrs = {
        "kind": "lindyn.stats",
        "dataset": stats.meta.get("label") or stats.meta.get("name", ""),
        "dataset_meta": json.dumps(stats.meta, sort_keys=True, default=str),
        "data_hash": stats.meta.get("data_hash", ""),
        "stats_hash": stats.stats_hash,
        "center": str(stats.meta.get("center", "")),
        **provenance(),
    }
    return variables, attrs


def stats_dataset(stats: Stats) -> xr.Dataset:
    """The statistics store's content as an :class:`xarray.Dataset`."""
    return _to_xarray(*_stats_content(stats))


def write_stats(stats: Stats, path: str | os.PathLike) -> Path:
    """Write a statistics store atomically."""
    return _atomic(path, lambda tmp: write_group(tmp, *_stats_content(stats)))


def read_stats(path: str | os.PathLike) -> Stats:
    """Load a statistics store (without xarray, for fast job start-up).

    Raises
    ------
    StoreError
        If the store is missing, damaged, or its content no longer matches its hash.
    """
    _check_final(Path(path), "statistics")
    try:
        arrays, attrs = read_group(path)
        stats = Stats(
            sigma_x=arrays["sigma_x"],
            sigma_xy=arrays["sigma_xy"],
            yy=float(arrays["yy"]),
            mu=arrays["mu"],
            Q=arrays["Q"],
            U=arrays["U"],
            V=arrays["V"],
            s=arrays["s"],
            lam=arrays["lam"],
            rho=arrays["rho"],
            rank=int(arrays["rank"]),
            eps_a1=float(arrays["eps_a1"]),
            eps_iso=float(arrays["eps_iso"]),
            rrr_coef=arrays["rrr_coef"],
            rrr_basis=arrays["rrr_basis"],
            rrr_gain=arrays["rrr_gain"],
            sigma_xc=arrays.get("sigma_xc"),
            cc=float(arrays["cc"]) if "cc" in arrays else None,
            meta=json.loads(attrs["dataset_meta"]),
        )
    except Exception as err:  # zarr raises many kinds for damaged stores
        raise StoreError(
            f"statistics store {path} is damaged ({err!r}); delete it and rerun"
        ) from err
    if stats.stats_hash != attrs.get("stats_hash"):
        raise StoreError(
            f"statistics store {path} does not match its recorded hash; delete it and rerun"
        )
    return stats


# ---------------------------------------------------------------- runs


def _run_content(
    record: RunRecord, stats: Stats, dataset: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    from lindyn.simulate import FRACTIONS

    c = record.u.shape[1]
    K = record.dist_seq.shape[1]
    sv = record.singular_values
    variables: dict[str, Any] = {
        "step": (
            ("step",),
            record.log_steps,
            {"long_name": "gradient-descent step", "units": "steps"},
        ),
        "component": (("component",), np.arange(1, c + 1), {"long_name": "component (by s_i)"}),
        "sv_index": (("sv_index",), np.arange(1, sv.shape[1] + 1), {}),
        "k": (("k",), np.arange(1, K + 1), {"long_name": "rank k of the target solution"}),
        "fraction": (("fraction",), np.asarray(FRACTIONS), {"long_name": "f in u_i ≥ f·ρ_i"}),
        "u": (
            ("step", "component"),
            record.u,
            {"long_name": "u_i(t) = U_iᵀ W(t) V_i", "units": "1"},
        ),
        "loss": (("step",), record.loss, {"long_name": "loss 1/(2n)‖Y − XW‖²"}),
        "nuclear_norm": (("step",), sv.sum(axis=1), {"long_name": "‖W(t)‖_*"}),
        "frobenius_norm_sq": (("step",), (sv**2).sum(axis=1), {"long_name": "‖W(t)‖²_F"}),
        "singular_values": (("step", "sv_index"), sv, {"long_name": "singular values of W(t)"}),
        "dist_seq": (("step", "k"), record.dist_seq, {"long_name": "‖W(t) − W_k^seq‖_F"}),
        "dist_rrr": (("step", "k"), record.dist_rrr, {"long_name": "‖W(t) − W_k^RRR‖_F"}),
        "crossing_step": (
            ("component", "fraction"),
            record.crossing_step,
            {"long_name": "first step with u_i ≥ f·ρ_i (exact; NaN: never)", "units": "steps"},
        ),
        "bound_violation": (
            ("component",),
            record.bound_violation,
            {"long_name": "max over steps of Theorem 3 envelope violation / ρ_i (depth 2)"},
        ),
        "u_final": (("component",), record.u_final, {"long_name": "u_i at the stop step"}),
        "s": (("component",), stats.s[:c], {"long_name": "s_i"}),
        "lam": (("component",), stats.lam[:c], {"long_name": "λ_i"}),
        "rho": (("component",), stats.rho[:c], {"long_name": "ρ_i"}),
    }
    if record.recon_error is not None:
        variables["recon_error"] = (
            ("step",),
            record.recon_error,
            {"long_name": "clean-signal reconstruction error ‖X_clean − XW‖²/n"},
        )
    spec = record.spec
    attrs = {
        "kind": "lindyn.run",
        "schema_version": RUN_SCHEMA_VERSION,
        "dataset": dataset or stats.meta.get("label") or stats.meta.get("name", ""),
        "depth": int(spec.depth),
        "eta": float(spec.eta),
        "delta": float(spec.delta),
        "seed": int(spec.seed),
        "init": spec.init,
        "width": int(record.width),
        "status": record.status,
        "stop_step": int(record.stop_step),
        "loss_final": record.loss_final,
        "loss_target": record.loss_target,
        "params": json.dumps(record.params, sort_keys=True),
        "stats_hash": stats.stats_hash,
        "data_hash": stats.meta.get("data_hash", ""),
        "eps_a1": stats.eps_a1,
        "elapsed_seconds": record.elapsed_seconds,
        **provenance(),
    }
    return variables, attrs


def run_dataset(record: RunRecord, stats: Stats, dataset: str | None = None) -> xr.Dataset:
    """One run's store content as an :class:`xarray.Dataset`.

    Parameters
    ----------
    record : RunRecord
        Output of :func:`lindyn.simulate.run_cells`.
    stats : Stats
        The dataset's statistics (for component spectra and provenance).
    dataset : str, optional
        The dataset's name in the grid (default: its label or loader name).
    """
    return _to_xarray(*_run_content(record, stats, dataset))


def write_run(
    record: RunRecord, stats: Stats, path: str | os.PathLike, dataset: str | None = None
) -> Path:
    """Write a run store atomically (without importing xarray)."""
    return _atomic(path, lambda tmp: write_group(tmp, *_run_content(record, stats, dataset)))


@dataclass(frozen=True)
class RunArrays:
    """A run store read into memory without xarray (for fast aggregation).

    Attributes
    ----------
    values : dict of ndarray
        Every array, coordinates included.
    dims : dict of tuple of str
        Each array's dimensions.
    var_attrs : dict of dict
        Each array's attributes (long names, units).
    attrs : dict
        The store's attributes.
    """

    values: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    var_attrs: dict[str, dict[str, Any]]
    attrs: dict[str, Any]


def read_run_arrays(path: str | os.PathLike) -> RunArrays:
    """Read and verify a whole run store (checksum, required variables and attrs).

    Raises
    ------
    StoreError
        Naming the store and how to recompute it.
    """
    path = Path(path)
    _check_final(path, "run")
    try:
        values, array_attrs, attrs = read_verified(path)
    except IntegrityError as err:
        raise StoreError(f"run store {path} is damaged: {err}; {_recompute_hint(path)}") from err
    missing = [v for v in RUN_REQUIRED if v not in values] + [
        a for a in RUN_ATTRS if a not in attrs
    ]
    if missing:
        raise StoreError(f"run store {path} lacks {', '.join(missing)}; {_recompute_hint(path)}")
    dims = {name: tuple(a.get("_ARRAY_DIMENSIONS", ())) for name, a in array_attrs.items()}
    var_attrs = {
        name: {k: v for k, v in a.items() if k != "_ARRAY_DIMENSIONS"}
        for name, a in array_attrs.items()
    }
    return RunArrays(values=values, dims=dims, var_attrs=var_attrs, attrs=attrs)


def read_run(
    path: str | os.PathLike, load: bool = False, lazy: bool = False, verify: bool | None = None
) -> xr.Dataset:
    """Open a run store, checking that it is complete.

    Parameters
    ----------
    path : path-like
    load : bool
        Load the values into memory (which also detects unreadable chunks).
    lazy : bool
        Back the variables with Dask arrays.
    verify : bool, optional
        Check the store's content against the checksum recorded when it was
        written (reads it once more; about a millisecond for a run store).
        Detects deleted or truncated chunks and edited metadata. Default: ``load``.

    Raises
    ------
    StoreError
        If the store is missing, incomplete or damaged; the message names the
        store and how to recompute it.
    """
    path = Path(path)
    if verify if verify is not None else load:
        _check_final(path, "run")
        _verify(path, "run")
    ds = _open(path, "run", lazy=lazy)
    missing = [v for v in RUN_REQUIRED if v not in ds] + [a for a in RUN_ATTRS if a not in ds.attrs]
    if missing:
        raise StoreError(f"run store {path} lacks {', '.join(missing)}; {_recompute_hint(path)}")
    if load:
        try:
            ds = ds.load()
        except Exception as err:
            raise StoreError(
                f"run store {path} has damaged data ({err}); {_recompute_hint(path)}"
            ) from err
    return ds
