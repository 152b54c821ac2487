"""Query stored results: xarray objects for code, tables for the shell.

``open_results("results")`` returns an :class:`xarray.DataTree` with one node per
dataset and one child per aggregated table (``trajectories``, ``phase_times``,
``bounds``, ``path``, ``learning``), each with the grid axes as dimensions::

    tree = lindyn.open_results("results")
    tree["digits/phase_times"].ds.sel(depth=2, eta=0.1, fraction=0.5)

``lindyn query TABLE --where AXIS=VALUE`` prints the same data as text or CSV,
and ``lindyn query runs`` says which runs are stale against the current
configuration and code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from lindyn.paths import (
    AGGREGATES,
    QUERY_COLUMNS,
    aggregate_kind,
    aggregate_path,
    departure_path,
    generalisation_path,
    stats_path,
)
from lindyn.provenance import code_hash, git_commit
from lindyn.runs import BALANCED
from lindyn.store import STATS_KIND, open_store

__all__ = ["open_results", "query_main", "query_table", "stale_runs"]


def _identity(results: Path, dataset: str) -> dict[str, Any]:
    """What a dataset's aggregated stores must record: it, and its current statistics."""
    expected = {"dataset": dataset}
    if stats_path(results, dataset).exists():
        expected["stats_hash"] = _stats_attrs(results, dataset)["stats_hash"]
    return expected


def _open_aggregate(
    results: Path, dataset: str, table: str, expected: Mapping[str, Any], lazy: bool
) -> xr.Dataset:
    """One aggregated store, checked to be whole and the one ``expected`` describes.

    Loaded, every chunk is verified now; lazy, as it is read.
    """
    return open_store(
        aggregate_path(results, dataset, table),
        "aggregated",
        kind=aggregate_kind(table),
        expected=expected,
        lazy=lazy,
        verify=not lazy,
    )


def _datasets(results: Path) -> list[str]:
    root = results / "aggregate"
    if not root.is_dir():
        raise FileNotFoundError(f"no aggregated results under {root}; run the pipeline first")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def open_results(path: str | Path = "results") -> xr.DataTree:
    """Open every aggregated store under ``path/aggregate`` lazily.

    Each store is checked as :func:`lindyn.store.open_store` does (whole, with
    its checksums, of the dataset whose directory it sits in, computed from that
    dataset's current statistics); its chunks are verified as they are read.

    Parameters
    ----------
    path : path-like
        The pipeline's results directory.

    Returns
    -------
    xarray.DataTree
        Nodes ``{dataset}/{table}``.
    """
    path = Path(path)
    nodes = {}
    for dataset in _datasets(path):
        tables = [t for t in AGGREGATES if aggregate_path(path, dataset, t).exists()]
        expected = _identity(path, dataset) if tables else {}
        for table in tables:
            nodes[f"{dataset}/{table}"] = _open_aggregate(path, dataset, table, expected, lazy=True)
    if not nodes:
        raise FileNotFoundError(f"no aggregated stores under {path / 'aggregate'}")
    return xr.DataTree.from_dict(nodes)


def _parse_where(items: list[str]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--where expects AXIS=VALUE, got {item!r}")
        where.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return where


def _select(ds: xr.Dataset, where: Mapping[str, list[str]]) -> xr.Dataset:
    for key, values in where.items():
        if key == "dataset":
            continue
        if key not in ds.coords:
            raise ValueError(f"unknown axis {key!r}; axes: {', '.join(sorted(map(str, ds.dims)))}")
        coord = ds[key]
        typed = [
            type(coord.values.flat[0].item())(v) if coord.dtype.kind in "iuf" else v for v in values
        ]
        ds = ds.sel({key: typed})
    return ds


def query_table(
    results: str | Path, table: str, where: Mapping[str, list[str]] | None = None
) -> pd.DataFrame:
    """One of ``lindyn query``'s tables as a DataFrame.

    Parameters
    ----------
    results : path-like
        The results directory.
    table : str
        One of :data:`lindyn.paths.QUERY_TABLES`.
    where : mapping, optional
        Axis name to allowed values (strings), e.g. ``{"depth": ["2"]}``;
        ``dataset`` selects datasets.
    """
    where = dict(where or {})
    results = Path(results)
    datasets = where.get("dataset")
    if table == "eps":
        return _eps_table(results, datasets)
    if table == "runs":
        return stale_runs(results, datasets=datasets)
    if table == "generalisation":
        return _generalisation_table(results, datasets)
    if table in ("departure", "departure_fit"):
        return _departure_table(results, table, where)
    name, columns = QUERY_COLUMNS[table]
    frames = []
    for dataset in _datasets(results):
        if (datasets and dataset not in datasets) or not aggregate_path(
            results, dataset, name
        ).exists():
            continue
        expected = _identity(results, dataset)
        ds = _select(_open_aggregate(results, dataset, name, expected, lazy=False), where)
        present = [c for c in columns if c in ds]
        if not present:
            continue
        frame = ds[present].to_dataframe()
        value_columns = [c for c in present if c != "status"]
        frame = frame.dropna(how="all", subset=value_columns).reset_index()
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _departure_table(results: Path, table: str, where: Mapping[str, list[str]]) -> pd.DataFrame:
    """The departure study (:mod:`lindyn.departure`): per-run measures, or the fitted law."""
    from lindyn.departure import cell_measures, open_departure, study_fit

    path = departure_path(results)
    if not path.exists():
        return pd.DataFrame()
    ds = open_departure(path)
    if table == "departure_fit":
        frame = study_fit(ds)
        for key, values in where.items():
            if key not in frame:
                raise ValueError(f"unknown column {key!r}; columns: {', '.join(frame.columns)}")
            kind = frame[key].dtype.kind
            frame = frame[frame[key].isin([float(v) if kind in "iuf" else v for v in values])]
        return frame.reset_index(drop=True)
    frame = _select(cell_measures(ds), where).to_dataframe()
    return frame.reset_index()


def _stats_store(results: str | Path, dataset: str) -> xr.Dataset:
    """A dataset's statistics store, after verifying every byte of it."""
    return open_store(
        stats_path(results, dataset),
        "statistics",
        kind=STATS_KIND,
        required=("dataset_meta", "stats_hash"),
        expected={"dataset": dataset},
    )


def _stats_attrs(results: str | Path, dataset: str) -> dict[str, Any]:
    return _stats_store(results, dataset).attrs


def _eps_table(results: Path, datasets: list[str] | None) -> pd.DataFrame:
    """Table 1 (:func:`lindyn.report.measures.eps_table`): one row per dataset."""
    from lindyn.report.loading import DatasetResults
    from lindyn.report.measures import eps_table

    names = [
        store.name.removesuffix(".zarr.zip")
        for store in sorted((results / "datasets").glob("*.zarr.zip"))
    ]
    stores = {
        name: DatasetResults(name, _stats_store(results, name))
        for name in names
        if not datasets or name in datasets
    }
    if not stores:
        return pd.DataFrame()
    table = eps_table(stores).to_dataframe().unstack("centring")
    table.columns = [f"{eps}_{centring}" for eps, centring in table.columns]
    table.insert(0, "loader", [res.loader for res in stores.values()])
    table.insert(1, "center", [res.meta.get("center") for res in stores.values()])
    return table.reset_index()


def _generalisation_table(results: Path, datasets: list[str] | None) -> pd.DataFrame:
    """Per generalisation study, :func:`lindyn.generalisation.summary` (winner first)."""
    from lindyn.generalisation import open_study, summary

    frames = []
    pattern = generalisation_path(results, "*")
    for study in sorted(pattern.parent.glob(pattern.name)):
        dataset = study.name.removesuffix(".zarr.zip")
        if datasets and dataset not in datasets:
            continue
        frame = summary(open_study(study, _identity(results, dataset)))
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _differs(stored: Any, configured: Any) -> bool:
    if isinstance(stored, str) or isinstance(configured, str):
        return str(stored) != str(configured)
    return not np.isclose(float(stored), float(configured))


def stale_runs(
    results: str | Path,
    config: Mapping[str, Any] | None = None,
    datasets: list[str] | None = None,
) -> pd.DataFrame:
    """Every stored run, and why it is stale against the current config and code.

    A run is stale when its simulation settings differ from the configuration,
    when the dataset's statistics changed since (hash), or when it was made by
    other code (lindyn version, or the hash of the modules that compute results;
    see :func:`lindyn.provenance.code_hash`).

    Parameters
    ----------
    results : path-like
        The results directory.
    config : mapping, optional
        The pipeline configuration, checked and completed by
        :func:`lindyn.config.validated` (default: ``config.yaml`` beside ``results``).
    datasets : list of str, optional
        Only these datasets.

    Returns
    -------
    pandas.DataFrame
        One row per run (cell of a block store): its dataset and grid axes (no
        seed for the aligned init), status, stop step, ``stale``, ``why`` and the
        block store's path. A block that is not whole, or not the block its path
        names in the configuration's grid (e.g. another block copied onto it), is
        one row of status ``unusable`` whose ``why`` names the problem.
    """
    from lindyn import __version__
    from lindyn.blocks import plan_blocks
    from lindyn.config import default, load_config, validated
    from lindyn.store import StoreError, open_block
    from lindyn.sweeps import RunSettings

    results = Path(results)
    if config is None:
        config_path = results.resolve().parent / "config.yaml"
        config = load_config(config_path) if config_path.exists() else {}
    elif config:
        config = validated(config)
    # The configuration keys that change what a block computes (its `settings` attribute),
    # and what a block made before a setting existed ran with: the setting's default.
    defaults = {field.name: default(field.name) for field in fields(RunSettings)}
    settings = {key: config[key] for key in defaults if key in config}
    commit = git_commit()
    current_code = code_hash()
    hashes: dict[str, str | None] = {}
    planned = {
        dataset: {block.name: block for block in plan_blocks(config, dataset)}
        for dataset in (config["datasets"] if config else {})
    }
    frames = []
    for store in sorted((results / "blocks").glob("*/*.zarr.zip")):
        dataset = store.parent.name
        if datasets and dataset not in datasets:
            continue
        shown = str(store.relative_to(results.parent) if results.is_absolute() else store)
        if dataset not in hashes:
            hashes[dataset] = (
                _stats_attrs(results, dataset)["stats_hash"]
                if stats_path(results, dataset).exists()
                else None
            )
        plan = planned.get(dataset, {}).get(store.name.removesuffix(".zarr.zip"))
        try:
            block = open_block(store, plan.expected() if plan else {"dataset": dataset})
        except StoreError as err:  # damaged, or another cell's block copied to this path
            frames.append(
                pd.DataFrame(
                    {"dataset": [dataset], "status": ["unusable"], "stale": [True]}
                    | {"why": [str(err)], "path": [shown]}
                )
            )
            continue
        attrs = block.attrs
        params = json.loads(attrs.get("settings", "{}"))
        reasons = [] if plan or not planned else ["not in the configuration's grid"]
        reasons += [
            f"{key} {params.get(key, defaults[key])} -> {value}"
            for key, value in settings.items()
            if _differs(params.get(key, defaults[key]), value)
        ]
        if hashes[dataset] is not None and attrs.get("stats_hash") != hashes[dataset]:
            reasons.append("dataset statistics changed")
        if attrs.get("lindyn_version") != __version__:
            reasons.append(f"lindyn {attrs.get('lindyn_version')} -> {__version__}")
        if attrs.get("code_hash") != current_code:
            reasons.append(
                f"code changed (made at commit {str(attrs.get('git_commit'))[:8]}, "
                f"now {commit[:8]})"
            )
        frame = block[["status", "stop_step"]].compute().to_dataframe().reset_index()
        frame.insert(0, "dataset", dataset)
        frame["init"] = str(block["init"].values)
        frame["width"] = int(block["width"].values)
        # A balanced block made before the ratio axis existed records no ratio.
        frame["ratio"] = float(block["ratio"].values) if "ratio" in block.coords else BALANCED
        frame["stale"] = bool(reasons)
        frame["why"] = "; ".join(reasons)
        frame["path"] = shown
        frames.append(frame)
    columns = ["dataset", "depth", "width", "ratio", "eta", "delta", "init", "seed", "status"]
    if not frames:
        return pd.DataFrame(columns=[*columns, "stop_step", "stale", "why", "path"])
    frame = pd.concat(frames, ignore_index=True)
    if "seed" in frame:  # the aligned init has no seed
        frame["seed"] = frame["seed"].astype("Int64")
    present = [c for c in columns if c in frame]
    return frame.reindex(columns=[*present, "stop_step", "stale", "why", "path"])


def query_main(args: argparse.Namespace) -> None:
    """The ``lindyn query`` subcommand."""
    frame = query_table(args.results, args.table, _parse_where(args.where))
    if frame.empty:
        print("no rows", file=sys.stderr)
        return
    try:
        if args.format == "csv":
            frame.to_csv(sys.stdout, index=False)
        else:
            print(frame.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    except BrokenPipeError:  # `lindyn query ... | head`
        sys.stderr.close()
