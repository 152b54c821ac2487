"""How many grid cells per block on Slurm? Wall time of the simulate step against the tiles.

A block of cells is one Slurm job (rule ``simulate``), and config ``blocks`` sets how many
cells a block holds. This runs the real workflow (a copy, in a temporary directory) through
the Slurm profile on the cluster that ``tests/cluster/start_slurm.sh`` starts, once per
tile setting, and once locally for reference::

    bash tests/cluster/start_slurm.sh
    .venv/bin/python benchmarks/slurm_batching.py [--tiles 1,1,1,1 2,2,1,1 ...] [--max-steps N]

The grid is fixed (96 cells of a small dataset: 4 depths × 4 step sizes × 2 init scales,
aligned, and random with 2 seeds); tiles are ``depth,eta,delta,seed``. Only the simulate
step is timed (``--until simulate``, statistics made beforehand), from the start of
``snakemake`` to its end, so the times include Snakemake's start, submission, each job's
own Snakemake start and the status polling. "compute" is the blocks' own simulation time
(their ``elapsed_seconds``), summed: the rest of a job's cost is overhead.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lindyn.blocks import block_path, plan_blocks
from lindyn.config import validated
from lindyn.store import open_block

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Tile settings (depth, eta, delta, seed) giving blocks of 1, 4, 16 and 32/64 cells.
DEFAULT_TILES = ["1,1,1,1", "2,2,1,1", "4,4,1,1", "4,4,2,2"]


def config(tiles: str, max_steps: int) -> dict:
    depth, eta, delta, seed = (int(v) for v in tiles.split(","))
    return validated(
        {
            "datasets": {
                "bench": {"loader": "commuting", "options": {"d": 20, "p": 10, "seed": 0}}
            },
            "grid": {
                "depth": [1, 2, 3, 4],
                "eta": [0.02, 0.05, 0.1, 0.2],
                "delta": [1.0, 2.0],
                "init": ["aligned", "random"],
                "seed": [0, 1],
            },
            "width": 10,
            "max_steps": max_steps,
            "log_density": 20,
            "tol": 1e-8,
            "max_components": 10,
            "blocks": {"depth": depth, "eta": eta, "delta": delta, "seed": seed},
            "aggregate": {"workers": 1},
        }
    )


def run(workdir: Path, *args: str, timeout: int = 1800) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        ["timeout", "-k", "10", str(timeout), *SNAKEMAKE, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        sys.exit(f"snakemake {' '.join(args)} failed:\n{tail}")
    return elapsed, proc.stdout + proc.stderr


def compute_seconds(workdir: Path, cfg: dict) -> float:
    """The blocks' own simulation time, summed."""
    return sum(
        float(open_block(workdir / block_path(block), verify=False).attrs["elapsed_seconds"])
        for block in plan_blocks(cfg, "bench")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", nargs="+", default=DEFAULT_TILES)
    parser.add_argument("--max-steps", type=int, default=10000)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="lindyn-batching-") as tmp:
        workdir = Path(tmp)
        shutil.copy(REPO / "Snakefile", workdir / "Snakefile")
        shutil.copytree(REPO / "workflow", workdir / "workflow")
        local = ["--workflow-profile", "workflow/profiles/default", "--cores", "2"]

        def prepare(tiles: str) -> dict:
            cfg = config(tiles, args.max_steps)
            (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
            for sub in ("blocks", "logs/blocks"):
                shutil.rmtree(workdir / "results" / sub, ignore_errors=True)
            return cfg

        prepare(args.tiles[0])
        run(workdir, *local, "--until", "dataset_stats")
        cells = sum(b.cells for b in plan_blocks(config(args.tiles[0], 1), "bench"))
        for tiles in args.tiles:
            cfg = prepare(tiles)
            sizes = sorted({b.cells for b in plan_blocks(cfg, "bench")})
            seconds, out = run(
                workdir,
                "--workflow-profile",
                "workflow/profiles/slurm",
                "--slurm-no-account",
                "--until",
                "simulate",
            )
            jobs = len(re.findall(r"submitted with SLURM jobid", out))
            per_job = "/".join(map(str, sizes))
            rows.append((f"slurm, {tiles}", per_job, jobs, seconds, compute_seconds(workdir, cfg)))
        cfg = prepare(args.tiles[-1])
        seconds, _ = run(workdir, *local, "--until", "simulate")
        rows.append(
            (f"local 2 cores, {args.tiles[-1]}", "-", 0, seconds, compute_seconds(workdir, cfg))
        )

    print(f"{cells} cells of {args.max_steps} steps, {os.cpu_count()} CPUs")
    print(f"{'run, tiles':<24} {'cells/job':>9} {'jobs':>5} {'seconds':>8} {'compute':>8}")
    for name, per_job, jobs, seconds, compute in rows:
        print(f"{name:<24} {per_job:>9} {jobs:>5} {seconds:>8.1f} {compute:>8.1f}")


if __name__ == "__main__":
    main()
