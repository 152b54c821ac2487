"""Pipeline benchmarks: aggregation throughput, DAG build time, bytes per run.

    .venv/bin/python benchmarks/pipeline.py [--runs 1000 10000] [--dag-cells 10000]

Writes real run stores (short runs on a small commuting problem: the store layout
and size are those of any run with the same step budget and logging density) into
a temporary directory, aggregates them with :func:`lindyn.aggregate.aggregate`
(full pass) and prints a markdown table; then times `snakemake -n` on a generated
config of about ``--dag-cells`` cells. Medians of ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from lindyn.datasets import load_dataset
from lindyn.simulate import CellSpec, run_cells
from lindyn.stats import dataset_stats
from lindyn.store import write_run, write_stats

REPO = Path(__file__).resolve().parents[1]


def make_runs(root: Path, n_runs: int) -> tuple[Path, list[Path]]:
    """Simulate ``n_runs`` cells of a grid (η × δ × seeds, random init) and store them."""
    data = load_dataset("commuting", d=20, p=10, n=200)
    stats = dataset_stats(data.X, data.Y, meta=data.meta)
    stats_path = write_stats(stats, root / "stats.zarr")
    side = int(np.ceil(np.sqrt(n_runs / 4)))
    etas = np.round(np.linspace(0.02, 0.2, side), 6)
    deltas = np.round(np.linspace(1.0, 4.0, side), 6)
    specs = [
        CellSpec(2, float(eta), float(delta), seed, "random", 10)
        for seed in range(4)
        for eta in etas
        for delta in deltas
    ][:n_runs]
    paths = []
    for start in range(0, len(specs), 256):
        batch = specs[start : start + 256]
        for record in run_cells(stats, batch, max_steps=10_000, log_density=20, tol=1e-2):
            spec = record.spec
            path = root / f"runs/s{spec.seed}/eta{spec.eta}_delta{spec.delta}.zarr"
            paths.append(write_run(record, stats, path, dataset="bench"))
    return stats_path, paths


def time_aggregation(stats_path: Path, paths: list[Path], workers: int, repeats: int) -> float:
    from lindyn.aggregate import aggregate

    times = []
    for _ in range(repeats):
        out = stats_path.parent / "aggregate"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        aggregate(paths, stats_path, out, workers=workers)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_dag(cells: int, repeats: int) -> tuple[int, float]:
    """Median wall time of `snakemake -n` for a grid of about ``cells`` cells."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    per_dataset = cells / len(config["datasets"])
    side = int(np.ceil(np.sqrt(per_dataset / (4 * 3))))
    config["grid"]["eta"] = [round(float(x), 6) for x in np.linspace(0.01, 0.2, side)]
    config["grid"]["delta"] = [round(float(x), 6) for x in np.linspace(0.5, 6.0, side)]
    total = len(config["datasets"]) * 4 * side * side * 3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(REPO / "Snakefile", work / "Snakefile")
        shutil.copytree(REPO / "workflow", work / "workflow")
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--cores", "2"],
                cwd=work,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
    return total, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--dag-cells", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = ["| measurement | value |", "|---|---|"]
    for n_runs in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            stats_path, paths = make_runs(Path(tmp), n_runs)
            made = time.perf_counter() - start
            size = sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())
            rows.append(f"| {n_runs} runs: simulated and stored (in one process) | {made:.1f} s |")
            rows.append(f"| bytes stored per run | {size / len(paths) / 1024:.1f} KiB |")
            for workers in (1, 2):
                seconds = time_aggregation(stats_path, paths, workers, args.repeats)
                rows.append(
                    f"| aggregate {n_runs} runs, {workers} Dask worker(s) | {seconds:.1f} s "
                    f"({n_runs / seconds:.0f} runs/s) |"
                )
    cells, seconds = time_dag(args.dag_cells, args.repeats)
    rows.append(f"| `snakemake -n` (DAG build) for {cells} cells | {seconds:.1f} s |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
