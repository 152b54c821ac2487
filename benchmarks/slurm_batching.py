"""How many grid cells per Slurm job? Wall time of the simulate step against the batch size.

Runs the real workflow (a copy, in a temporary directory) through the Slurm profile on the
cluster that ``tests/cluster/start_slurm.sh`` starts, once per batch size
(``--group-components simulate_{dataset}=N``), and once locally for reference::

    bash tests/cluster/start_slurm.sh
    .venv/bin/python benchmarks/slurm_batching.py [--sizes 1 4 8 16 32] [--seeds 0]

Only the simulate step is timed (``--until simulate``, statistics made beforehand), from the
start of ``snakemake`` to its end, so the times include Snakemake's start, submission, the
jobs' own Snakemake start and the status polling, which dominate for short cells.
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

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def config(seeds: list[int]) -> dict:
    return {
        "datasets": {"bench": {"loader": "commuting", "options": {"d": 20, "p": 10, "seed": 0}}},
        "grid": {
            "depth": [1, 2, 3, 4],
            "eta": [0.05, 0.1],
            "delta": [1.0, 2.0],
            "init": ["aligned", "random"],
            "seed": seeds,
        },
        "width": 10,
        "max_steps": 10000,
        "log_density": 20,
        "tol": 1e-8,
        "max_components": 10,
        "aggregate": {"workers": 1},
    }


def run(workdir: Path, *args: str, timeout: int = 1200) -> tuple[float, str]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lindyn-batching-") as tmp:
        workdir = Path(tmp)
        shutil.copy(REPO / "Snakefile", workdir / "Snakefile")
        shutil.copytree(REPO / "workflow", workdir / "workflow")
        (workdir / "config.yaml").write_text(yaml.safe_dump(config(args.seeds)))
        local = ["--workflow-profile", "workflow/profiles/default", "--cores", "2"]
        run(workdir, *local, "--until", "dataset_stats")

        def fresh() -> None:
            for sub in ("runs", "logs/runs"):
                shutil.rmtree(workdir / "results" / sub, ignore_errors=True)

        fresh()
        seconds, out = run(workdir, *local, "--until", "simulate")
        cells = int(re.search(r"^simulate\s+(\d+)$", out, re.M).group(1))
        rows = [("local, 2 cores", "-", seconds)]
        for size in args.sizes:
            fresh()
            seconds, out = run(
                workdir,
                "--workflow-profile",
                "workflow/profiles/slurm",
                "--slurm-no-account",
                "--until",
                "simulate",
                "--group-components",
                f"simulate_{{dataset}}={size}",
            )
            jobs = len(re.findall(r"submitted with SLURM jobid", out))
            rows.append((f"slurm, {size} cells/job", str(jobs), seconds))

    print(f"{cells} cells, {os.cpu_count()} CPUs")
    print(f"{'run':<22} {'jobs':>5} {'seconds':>8}")
    for name, jobs, seconds in rows:
        print(f"{name:<22} {jobs:>5} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
