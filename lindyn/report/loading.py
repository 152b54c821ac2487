"""Reading one dataset's statistics and aggregated stores, verified.

Every store is opened through :func:`lindyn.store.open_store`, which checks that
it is whole and is what it claims: its ``kind``, its ``dataset`` and, for the
aggregated stores, the hash of the statistics they were computed from.

The paper's claims are about the balanced init: :class:`DatasetResults` holds the
trajectories, phase times, bounds and path stores at ratio 1 and the grid's
smallest width (:func:`claims_view`; the ``ratio`` axis dropped, ``width`` kept
with that one value), and the ``learning`` store and ``all_trajectories`` over
every width and ratio, for the initialisation axes and the run inventory.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lindyn.paths import (
    AGGREGATES,
    aggregate_kind,
    aggregate_path,
    generalisation_path,
    stats_path,
)
from lindyn.runs import BALANCED, GRID_DIMS

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "GRID_DIMS",
    "DatasetResults",
    "aggregate_paths",
    "claims_view",
    "load_dataset",
    "load_results",
    "tidy",
]

# The aggregated stores the paper's claims read (lindyn.report.claims).
CLAIMS_STORES = ("trajectories", "phase_times", "bounds", "path")
# Variables of the path store that are per rank k; any other is the run's own.
K_VARIABLES = (
    "dist_seq",
    "dist_rrr",
    "min_rel_dist_seq",
    "min_rel_dist_rrr",
    "argmin_step_seq",
    "argmin_step_rrr",
    "window_start_seq",
    "window_end_seq",
    "window_start_rrr",
    "window_end_rrr",
    "seq_norm",
    "rrr_norm",
)


@dataclass
class DatasetResults:
    """One dataset's statistics store and aggregated stores (None where absent).

    ``trajectories``, ``phase_times``, ``bounds`` and ``path`` are the claims' view
    (:func:`claims_view`); ``learning`` and ``all_trajectories`` hold every width
    and ratio.
    """

    name: str
    stats: xr.Dataset | None
    trajectories: xr.Dataset | None = None
    phase_times: xr.Dataset | None = None
    bounds: xr.Dataset | None = None
    path: xr.Dataset | None = None
    # the generalisation study (lindyn.generalisation.study), if the dataset has a test set
    generalisation: xr.Dataset | None = None
    learning: xr.Dataset | None = None
    all_trajectories: xr.Dataset | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """The dataset's metadata (loader, centring, ε by centring), {} if unknown."""
        if self.stats is None:
            return {}
        return json.loads(self.stats.attrs["dataset_meta"])

    @property
    def loader(self) -> str:
        return str(self.meta.get("loader", ""))

    @property
    def eps_a1(self) -> float:
        return _scalar(self.stats, "eps_a1")

    @property
    def eps_iso(self) -> float:
        return _scalar(self.stats, "eps_iso")

    @property
    def complete(self) -> bool:
        """Whether every aggregated store the claims read is there (all but ``learning``)."""
        return all(getattr(self, name) is not None for name in CLAIMS_STORES)


def _scalar(ds: xr.Dataset | None, name: str) -> float:
    return math.nan if ds is None or name not in ds else float(ds[name].values)


def aggregate_paths(results: str | os.PathLike, dataset: str) -> dict[str, Path]:
    """Paths of a dataset's statistics store and aggregated stores under ``results``."""
    return {
        "stats": stats_path(results, dataset),
        **{name: aggregate_path(results, dataset, name) for name in AGGREGATES},
    }


def tidy(ds: xr.Dataset) -> xr.Dataset:
    """Give ``status`` the grid dims only, and drop a spurious ``k`` dimension.

    When the runs of one dataset track different numbers of ranks k (depth 1
    reaches all m components, deeper runs only the hidden width), combining them
    broadcasts every variable along ``k``; the values at ``k = 1`` (which every
    run has) are the run's own.
    """
    out = ds.copy()
    if "status" in out:
        # A run's status is one value; some stores broadcast it along other axes.
        extra = [d for d in out["status"].dims if d not in GRID_DIMS]
        if extra:
            out["status"] = out["status"].isel({d: 0 for d in extra}, drop=True)
    if "k" not in out.dims:
        return out
    for name in list(out.data_vars):
        if "k" in out[name].dims and name not in K_VARIABLES:
            out[name] = out[name].isel(k=0, drop=True)
    if not any("k" in out[name].dims for name in out.data_vars):
        out = out.drop_vars("k")
    return out


def claims_view(ds: xr.Dataset) -> xr.Dataset:
    """The runs the paper's claims are measured on: ratio 1, the smallest width.

    The ``ratio`` axis is dropped; ``width`` stays a dimension, of that one value.
    A store made before the ratio axis existed has none and is returned as it is.
    """
    if "ratio" in ds.dims:
        ds = ds.sel(ratio=BALANCED, drop=True)
    if "width" in ds.dims and ds.sizes["width"] > 1:
        ds = ds.isel(width=[int(ds["width"].values.argmin())])
    return ds


def load_dataset(results: str | os.PathLike, name: str) -> DatasetResults:
    """Open (and load into memory, verifying them) one dataset's stores.

    An absent store is None (and listed in ``problems``); a store that is there
    must be whole and of this dataset: its ``kind``, its ``dataset`` and, for
    aggregated stores, the hash of the statistics they were computed from.

    Raises
    ------
    lindyn.store.StoreError
        Naming a store that is damaged, unverifiable or not this dataset's, and
        how to recompute it.
    """
    from lindyn.generalisation import open_study
    from lindyn.store import STATS_KIND, open_store

    res = DatasetResults(name=name, stats=None)
    for key, path in aggregate_paths(results, name).items():
        if not path.exists():
            res.problems.append(f"{path} does not exist")
            continue
        expected = {"dataset": name}
        if key == "stats":
            res.stats = open_store(path, "statistics", kind=STATS_KIND, expected=expected)
            continue
        if res.stats is not None:
            expected["stats_hash"] = res.stats.attrs["stats_hash"]
        ds = tidy(open_store(path, "aggregated", kind=aggregate_kind(key), expected=expected))
        if "status" in ds:
            ds["status"] = ds["status"].astype(str)
        if key == "trajectories":
            res.all_trajectories = ds
        setattr(res, key, ds if key == "learning" else claims_view(ds))
    study = generalisation_path(results, name)
    if study.exists():  # datasets without a test set have no generalisation study
        expected = {"dataset": name}
        if res.stats is not None:
            expected["stats_hash"] = res.stats.attrs["stats_hash"]
        res.generalisation = open_study(study, expected)
    return res


def load_results(results: str | os.PathLike, datasets: Iterable[str]) -> dict[str, DatasetResults]:
    """:func:`load_dataset` for each dataset, in order."""
    return {name: load_dataset(results, name) for name in datasets}
