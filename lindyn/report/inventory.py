"""The runs: every expected cell with its status and timing, and the report's provenance."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn.report.format import fmt, md_table
from lindyn.report.loading import DatasetResults
from lindyn.runs import MISSING, STATUSES, USABLE_STATUSES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["provenance_section", "run_inventory", "runs_section"]

_CELL = ["depth", "width", "ratio", "eta", "delta", "init", "seed"]
_STATUSES = (*STATUSES, MISSING)


def run_inventory(
    results: Mapping[str, DatasetResults], config: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Every expected run with its status, stop step, final loss and run time.

    Expected runs are the config's grid cells when ``config`` is given; otherwise
    every cell of the aggregated grid except the aligned init's unused seeds.
    Cells expected but absent from the stores have status ``missing``.
    """
    import pandas as pd

    frames = []
    for res in results.values():
        traj = res.all_trajectories
        columns = ["status", "stop_step", "loss_final", "elapsed_seconds"]
        if traj is not None:
            frame = traj[[c for c in columns if c in traj]].to_dataframe().reset_index()
            frame["status"] = frame["status"].astype(str)
        else:
            frame = pd.DataFrame(columns=[*_CELL, *columns])
        expected = _expected_cells(res, config, frame)
        if expected is not None:
            frame = expected.merge(frame, on=_CELL, how="left")
            frame["status"] = frame["status"].fillna(MISSING)
        frame.insert(0, "dataset", res.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _expected_cells(
    res: DatasetResults, config: Mapping[str, Any] | None, frame: pd.DataFrame
) -> pd.DataFrame | None:
    import pandas as pd

    if config is not None and res.name in config["datasets"]:
        from lindyn.config import grid_cells

        cells = pd.DataFrame(grid_cells(config, res.name))
        if cells.empty:
            return None
        types = {"depth": int, "width": int, "ratio": float, "eta": float, "delta": float}
        types |= {"init": str, "seed": int}
        return pd.DataFrame({key: cells[key].astype(kind) for key, kind in types.items()})
    if frame.empty:
        return None
    # Without the config: the aligned init is deterministic, only its first seed is a run.
    keep = (frame["init"] != "aligned") | (frame["seed"] == frame["seed"].min())
    return frame.loc[keep, _CELL]


def runs_section(inventory: pd.DataFrame, problems: Sequence[str], limit: int = 40) -> list[str]:
    """The runs that are excluded (diverged, missing) or hit the step budget."""
    lines = ["## Runs excluded or incomplete", ""]
    if inventory.empty:
        return [*lines, "_No run inventory (no aggregated store)._", ""]
    bad = inventory[~inventory["status"].isin(USABLE_STATUSES)]
    budget = inventory[inventory["status"] == "max_steps"]
    lines += [
        f"{len(bad)} run(s) diverged or are missing: they are excluded from every statistic "
        f"above. {len(budget)} run(s) hit the step budget (`max_steps`): their crossings and "
        "path distances up to the budget are used, their final values are not; crossings the "
        "flow predicts past a run's stop step are counted as such in the claims' evidence.",
        "",
    ]
    keys = ["dataset", "depth", "width", "ratio", "init", "seed", "eta", "delta", "status"]
    if len(bad):
        rows = bad[keys + [c for c in ("stop_step", "loss_final") if c in bad]].values.tolist()
        lines += [md_table([*keys, "stop step", "final loss"][: len(rows[0])], rows), ""]
    if len(budget):
        by = ["dataset", "depth", "init"]
        counts = budget.groupby(by, sort=False).size().rename("runs").reset_index()
        total = inventory.groupby(by, sort=False).size().rename("of").reset_index()
        counts = counts.merge(total, on=by)
        lines += [
            "Runs at the step budget, by dataset, depth and initialisation:",
            "",
            md_table([*by, "runs at max_steps", "of"], counts.values.tolist()),
            "",
        ]
        if len(budget) <= limit:
            lines += [md_table(keys, budget[keys].values.tolist()), ""]
    if problems:
        lines += ["Stores that could not be read:", "", *[f"- {p}" for p in problems], ""]
    return lines


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for package in (
        "lindyn",
        "numpy",
        "scipy",
        "xarray",
        "zarr",
        "dask",
        "distributed",
        "pandas",
        "matplotlib",
        "scikit-learn",
        "snakemake",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def provenance_section(
    results: Mapping[str, DatasetResults], inventory: pd.DataFrame, config: Mapping[str, Any] | None
) -> list[str]:
    """Who wrote the report from what: commits, versions, run counts and timings, config."""
    from lindyn.provenance import provenance

    prov = provenance()
    commits = set()
    for res in results.values():
        for ds in (res.stats, res.all_trajectories):
            if ds is not None and "git_commit" in ds.attrs:
                commits.add(str(ds.attrs["git_commit"]))
        if res.all_trajectories is not None and "git_commit" in res.all_trajectories:
            commits |= {
                str(c)
                for c in np.unique(res.all_trajectories["git_commit"].values)
                if str(c) not in ("", "nan")
            }
    lines = [
        "## Provenance",
        "",
        f"- report written {prov['created']} by lindyn {prov['lindyn_version']}, "
        f"git commit `{prov['git_commit']}`, Python {platform.python_version()} on "
        f"{platform.platform()}",
        "- commits recorded in the stores: "
        + (", ".join(f"`{c}`" for c in sorted(commits)) or "none"),
        "- packages: " + ", ".join(f"{k} {v}" for k, v in _package_versions().items()),
        "",
    ]
    if not inventory.empty:
        rows = []
        for name, group in inventory.groupby("dataset", sort=False):
            counts = group["status"].value_counts()
            elapsed = group["elapsed_seconds"].astype(float)
            rows.append(
                [
                    name,
                    len(group),
                    *(int(counts.get(s, 0)) for s in _STATUSES),
                    fmt(elapsed.sum()),
                    fmt(elapsed.median()),
                    fmt(elapsed.max()),
                ]
            )
        headers = ["dataset", "runs", *_STATUSES]
        lines += [
            "### Runs and timings",
            "",
            md_table([*headers, "run time total (s)", "median (s)", "max (s)"], rows),
            "",
            "Run time is each run's share of its block's simulation time (`elapsed_seconds`).",
            "",
        ]
    if config is not None:
        import yaml

        plain = json.loads(json.dumps(dict(config), default=str))
        lines += [
            "### Configuration",
            "",
            "```yaml",
            yaml.safe_dump(plain, sort_keys=False).rstrip(),
            "```",
            "",
        ]
    return lines
