"""lindyn's pipeline benchmark: one command, the whole pipeline measured side by side.

Usage (from the repository root, with the project's virtual environment)::

    .venv/bin/python benchmarks/pipeline.py                       # everything; writes RESULTS.md
    .venv/bin/python benchmarks/pipeline.py --quick               # smoke run: tiny sizes, prints
    .venv/bin/python benchmarks/pipeline.py --only default,incremental

It prints one markdown table and, on a full run of every part (no ``--quick``, no
``--only``), replaces the "## Pipeline" sections at the end of
``benchmarks/RESULTS.md`` with it (``--output PATH`` writes elsewhere, or a partial
run; ``--no-write`` never writes). Every pipeline run happens on a fresh working
copy of the workflow (Snakefile, workflow/ and a config.yaml, as
``tests/conftest.py``'s ``make_workdir`` makes it) in a temporary directory: the
repository's own ``results/`` is never touched.

Parts (``--only`` takes a comma-separated list):

grid1536
    The 1,536-cell grid: commuting (the repository's options: d 20, p 10), depth
    1–4, 8 step sizes geometric in 0.01–0.3, δ = 1…8, aligned + random with seeds
    0–4, width 10, 10⁴ steps (log density 20, tol 1e-8, 32 components). Contenders,
    timed in rounds in a rotating order (medians over ``--repeats`` rounds):
    ``snakemake --cores 2`` up to the aggregate outputs (not figures or report) on a
    fresh copy (wall; CPU = user + sys of Snakemake and every job, from the
    children's rusage; the sum of the blocks' ``elapsed_seconds``; aggregation
    time from the aggregate job's log); the same cells through :func:`lindyn.sweep`
    in this process; the same cells × the full 10⁴ steps through the raw compiled
    kernel :class:`lindyn.fastgd.Sweep` in this process (no stopping rule). Pipeline
    efficiency = (one-process kernel wall × cores) / (pipeline wall × cores), with
    both sides on the same cores. Then, once, the peer: a plain ``multiprocessing``
    script (one process a core) running the full-data numpy loop of
    :func:`lindyn.gd.naive_gd` (without its history; loss recorded every step; full
    budget, no early stop) on every 8th cell, projected to all cells.
default
    The default study as ``make run`` does it after install: the repository's
    config.yaml, ``lindyn run --cores 2`` (``snakemake --rerun-incomplete``, then
    ``snakemake --report results/report.html``; figures and report included) on a
    fresh copy; wall time, median over ``--repeats``.
grid100k
    A 102,500-cell commuting grid (depth 1–4, 25 η geometric in 0.01–0.3, 25 δ in
    1–8, aligned + random with seeds 0–39, 10⁴ steps): ``snakemake -n`` time and peak
    memory (median over ``--repeats``; the cells it schedules are checked against
    the grid), then one full ``snakemake --cores 2`` run up to the aggregate
    outputs: wall, CPU, aggregation time (aggregate job's log), files and bytes
    under results/.
incremental
    On a finished default study (the last one of ``default``, or a new one):
    append one η value, one δ value, and both, to the repository's config; count
    the cells that the simulate jobs of ``snakemake -n`` would simulate
    (:func:`lindyn.blocks.scheduled_cells`) against the number of new cells.

``--quick`` shrinks every part (short runs on small grids, 1 round) for a smoke
test; its numbers are not the benchmark. Files and bytes per run *before* the
block design are quoted from the issue's measurement on commit 31d8328 (the
per-cell pipeline on the 1,536 cells: 89,088 files, 493 MB), not measured here.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
PARTS = ("grid1536", "default", "grid100k", "incremental")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
RAW_CHUNK = 1000  # steps a call of the raw kernel (bounds its output arrays, ~26 MB)
PEER_STRIDE = 8  # the peer runs every 8th cell
CHECK_STEPS = 20  # steps after which the peer's loop is compared with naive_gd
# The per-cell design before the blocks, measured by the issue on the 1,536-cell grid.
BEFORE = {"commit": "31d8328", "cells": 1536, "files": 89_088, "bytes": 493e6}
TARGETS = {
    "grid_wall": 30.0,  # s, 1,536-cell pipeline
    "efficiency": 0.5,
    "default_wall": 300.0,  # s, make run (the default study in the paper's regime)
    "dry_run": 30.0,  # s, snakemake -n of the 100k grid
    "grid100k_wall": 20 * 60.0,  # s
    "grid100k_files": 10_000,
}
_AGGREGATED = re.compile(
    r"aggregated (\d+) runs of (\d+) blocks in ([0-9.]+) s \(opening ([0-9.]+) s\)"
)


# ---------------------------------------------------------------------------- sizes


def geometric(lo: float, hi: float, n: int) -> list[float]:
    """``n`` values geometric in [lo, hi], rounded to 4 significant digits."""
    return [float(f"{v:.4g}") for v in np.geomspace(lo, hi, n)]


def linear(lo: float, hi: float, n: int) -> list[float]:
    """``n`` values evenly spaced in [lo, hi], rounded to 4 significant digits."""
    return [float(f"{v:.4g}") for v in np.linspace(lo, hi, n)]


@dataclass(frozen=True)
class Grid:
    """A commuting grid with its run settings."""

    depth: list[int]
    eta: list[float]
    delta: list[float]
    seeds: list[int]
    max_steps: int = 10_000
    log_density: int = 20
    tol: float = 1e-8
    max_components: int = 32
    width: int = 10
    inits: tuple[str, ...] = ("aligned", "random")

    def seeds_of(self, init: str) -> list[int]:
        return self.seeds if init == "random" else [0]

    @property
    def cells(self) -> int:
        per = len(self.depth) * len(self.eta) * len(self.delta)
        return sum(per * len(self.seeds_of(init)) for init in self.inits)

    def describe(self) -> str:
        inits = " + ".join(
            f"random (seeds {self.seeds[0]}–{self.seeds[-1]})" if i == "random" else i
            for i in self.inits
        )
        return (
            f"{self.cells:,} cells: depth {self.depth[0]}–{self.depth[-1]}, "
            f"{len(self.eta)} η ({self.eta[0]:g}–{self.eta[-1]:g}), "
            f"{len(self.delta)} δ ({self.delta[0]:g}–{self.delta[-1]:g}), {inits}, "
            f"width {self.width}, {self.max_steps:,} steps"
        )


def commuting_text(config: dict[str, Any]) -> str:
    options = config["datasets"]["commuting"].get("options", {})
    return "commuting (" + ", ".join(f"{k} {v}" for k, v in options.items()) + ")"


def repo_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def grid_config(grid: Grid) -> dict[str, Any]:
    """A pipeline configuration of the commuting dataset alone (the repository's options)."""
    base = repo_config()
    config = {
        "datasets": {"commuting": base["datasets"]["commuting"]},
        "grid": {
            "depth": grid.depth,
            "eta": grid.eta,
            "delta": grid.delta,
            "init": list(grid.inits),
            "seed": grid.seeds,
        },
        "width": grid.width,
        "max_steps": grid.max_steps,
        "log_density": grid.log_density,
        "tol": grid.tol,
        "max_components": grid.max_components,
    }
    for key in ("blocks", "simulate", "aggregate", "cluster"):
        if key in base:
            config[key] = base[key]
    return config


def quick_default(config: dict[str, Any]) -> dict[str, Any]:
    """The repository's config.yaml on a smaller grid with short runs (``--quick``)."""
    config = copy.deepcopy(config)
    grid = config["grid"]
    grid["depth"] = grid["depth"][:2]
    grid["eta"] = grid["eta"][:2]
    grid["delta"] = grid["delta"][:2]
    grid["seed"] = grid.get("seed", [0])[:1]
    config["max_steps"] = 1000
    return config


@dataclass
class Options:
    """Settings of one benchmark run."""

    quick: bool
    repeats: int
    cores: int
    keep: bool
    base: Path
    grid1536: Grid
    grid100k: Grid
    default_config: dict[str, Any]


def make_options(args: argparse.Namespace, base: Path) -> Options:
    if args.quick:
        small = Grid([1, 2], geometric(0.01, 0.3, 4), [1.0, 2.0, 3.0, 4.0], [0, 1], max_steps=1000)
        big = Grid([1, 2], geometric(0.01, 0.3, 5), linear(1, 8, 5), list(range(6)), 1000)
        default = quick_default(repo_config())
    else:
        small = Grid([1, 2, 3, 4], geometric(0.01, 0.3, 8), linear(1, 8, 8), list(range(5)))
        big = Grid([1, 2, 3, 4], geometric(0.01, 0.3, 25), linear(1, 8, 25), list(range(40)))
        default = repo_config()
    return Options(
        quick=args.quick,
        repeats=args.repeats or (1 if args.quick else 3),
        cores=args.cores,
        keep=args.keep,
        base=base,
        grid1536=small,
        grid100k=big,
        default_config=default,
    )


# ---------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A finished child process, measured."""

    wall: float
    cpu: float  # user + sys of the process and every descendant it waited for
    maxrss_mb: float  # largest resident set of the process or any waited-for descendant
    stdout: str
    stderr: str
    returncode: int


def run_measured(cmd: list[str], cwd: Path) -> Proc:
    """Run ``cmd`` and measure it with ``wait4``: wall, CPU and peak memory of its tree."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            maxrss_mb=usage.ru_maxrss / 1024,
            stdout=out.read(),
            stderr=err.read(),
            returncode=proc.returncode,
        )


def snakemake(work: Path, *args: str, cores: int) -> Proc:
    """``snakemake --cores N ARGS`` in ``work`` (the interpreter running this script)."""
    proc = run_measured([*SNAKEMAKE, "--cores", str(cores), *args], work)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {work}:\n{tail}")
    return proc


def make_workdir(path: Path, config: dict[str, Any]) -> Path:
    """A fresh copy of the workflow with its own config (as tests/conftest.py makes it)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow")
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def drop(path: Path, opts: Options) -> None:
    if not opts.keep:
        shutil.rmtree(path, ignore_errors=True)


def aggregate_targets(datasets: list[str]) -> list[str]:
    from lindyn.paths import AGGREGATES, aggregate_path

    return [str(aggregate_path("results", d, name)) for d in datasets for name in AGGREGATES]


def census(root: Path) -> tuple[int, int, int]:
    """Files, apparent bytes and bytes on disk under ``root``."""
    files = size = disk = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
            disk += st.st_blocks * 512
    return files, size, disk


def blocks_elapsed(results: Path) -> tuple[int, float]:
    """Number of block stores and the sum of their ``elapsed_seconds`` (simulation time)."""
    total, count = 0.0, 0
    for path in sorted((results / "blocks").rglob("*.zarr.zip")):
        with zipfile.ZipFile(path) as archive:
            attrs = json.loads(archive.read("zarr.json"))["attributes"]
        total += float(attrs["elapsed_seconds"])
        count += 1
    return count, total


def aggregation_seconds(results: Path) -> tuple[float, int]:
    """Aggregation time over every dataset, from the aggregate jobs' logs; runs aggregated."""
    seconds, runs = 0.0, 0
    for log in sorted((results / "logs" / "aggregate").glob("*.log")):
        match = _AGGREGATED.search(log.read_text())
        if match is None:
            raise RuntimeError(f"{log} has no 'aggregated ... in ... s' line")
        runs += int(match[1])
        seconds += float(match[3])
    return seconds, runs


def config_cells(config: dict[str, Any]) -> int:
    from lindyn.blocks import plan_blocks
    from lindyn.config import validated

    config = validated(config)
    return sum(block.cells for name in config["datasets"] for block in plan_blocks(config, name))


def scheduled(dry_run: str) -> tuple[int, int]:
    """Blocks and cells the simulate jobs of a dry run would simulate (all datasets)."""
    from lindyn.blocks import scheduled_cells

    counts = scheduled_cells(dry_run).values()
    return sum(b for b, _ in counts), sum(c for _, c in counts)


# ---------------------------------------------------------------------------- one process


def commuting_stats(config: dict[str, Any]):
    """The commuting dataset's statistics, as the pipeline's `lindyn dataset` computes them."""
    import lindyn

    data = lindyn.load_dataset("commuting", **config["datasets"]["commuting"].get("options", {}))
    return data, lindyn.dataset_stats(
        data.X, data.Y, data.X_clean, data.meta, data.X_test, data.Y_test
    )


def one_process_sweep(stats, grid: Grid) -> dict[str, float]:
    """Every cell through :func:`lindyn.sweep` in this process (one call per init)."""
    # Not `lindyn.sweep`: after its first use that name is the submodule lindyn.sweep.
    from lindyn.sweeps import sweep

    start, cpu, elapsed = time.perf_counter(), time.process_time(), 0.0
    for init in grid.inits:
        runs = sweep(
            stats,
            grid.depth,
            grid.eta,
            grid.delta,
            init,
            grid.seeds_of(init),
            grid.width,
            max_steps=grid.max_steps,
            log_density=grid.log_density,
            tol=grid.tol,
            max_components=grid.max_components,
            progress=False,
        )
        elapsed += float(runs.attrs["elapsed_seconds"])
    return {
        "wall": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "elapsed": elapsed,
    }


def one_process_raw(stats, grid: Grid, steps: int | None = None) -> dict[str, float]:
    """Every cell × the full step budget through the raw compiled kernel, no stopping rule."""
    from lindyn.fastgd import Sweep
    from lindyn.gd import EigenProblem
    from lindyn.init import init_layers

    steps = grid.max_steps if steps is None else steps
    start, cpu = time.perf_counter(), time.process_time()
    problem = EigenProblem.from_stats(stats, grid.max_components)
    for init in grid.inits:
        cells = list(itertools.product(grid.eta, grid.delta, grid.seeds_of(init)))
        for depth in grid.depth:
            layers0 = [init_layers(stats, depth, grid.width, dl, init, sd) for _, dl, sd in cells]
            sweep = Sweep(problem, layers0, [eta for eta, _, _ in cells])
            done = 0
            while done < steps:
                chunk = min(RAW_CHUNK, steps - done)
                sweep.advance(chunk)
                done += chunk
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}


# ---------------------------------------------------------------------------- the peer

_PEER: dict[str, np.ndarray] = {}


def _peer_init(X: np.ndarray, Y: np.ndarray) -> None:
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)  # one process a core: one BLAS thread each
    _PEER["X"], _PEER["Y"] = X, Y


def peer_loop(X: np.ndarray, Y: np.ndarray, layers0, eta: float, steps: int):
    """Full-data GD, every layer every step (naive_gd's update without its history).

    Returns the final layers and the loss at steps ``0 … steps − 1``.
    """
    n = X.shape[0]
    layers = [np.array(layer, dtype=np.float64) for layer in layers0]
    L = len(layers)
    loss = np.empty(steps)
    with np.errstate(all="ignore"):  # diverging cells overflow, as in any plain loop
        for t in range(steps):
            prefix = [layers[0]]  # W_1 ⋯ W_i
            for layer in layers[1:]:
                prefix.append(prefix[-1] @ layer)
            suffix = [layers[-1]]  # W_i ⋯ W_L, built from the end
            for layer in layers[-2::-1]:
                suffix.append(layer @ suffix[-1])
            suffix.reverse()
            residual = X @ prefix[-1] - Y
            loss[t] = 0.5 * np.sum(residual * residual) / n
            G = X.T @ residual / n
            grads = []
            for i in range(L):
                grad = G if i == 0 else prefix[i - 1].T @ G
                grads.append(grad if i == L - 1 else grad @ suffix[i + 1].T)
            layers = [layer - eta * grad for layer, grad in zip(layers, grads, strict=True)]
    return layers, loss


def _peer_cell(cell: tuple[list[np.ndarray], float, int]) -> float:
    layers0, eta, steps = cell
    _, loss = peer_loop(_PEER["X"], _PEER["Y"], layers0, eta, steps)
    return float(loss[-1])


def peer_check(data, stats) -> float:
    """Relative difference of the peer's product and naive_gd's after CHECK_STEPS steps."""
    from lindyn.gd import batch_product, naive_gd
    from lindyn.init import init_layers

    layers0 = init_layers(stats, 3, 10, 1.0, "random", 0)
    ours, _ = peer_loop(data.X, data.Y, layers0, 0.1, CHECK_STEPS)
    ref = naive_gd(data.X, data.Y, layers0, 0.1, CHECK_STEPS)[-1]
    W, W_ref = batch_product(ours), batch_product(ref)
    return float(np.linalg.norm(W - W_ref) / np.linalg.norm(W_ref))


def run_peer(data, stats, grid: Grid, processes: int) -> dict[str, float]:
    """Every PEER_STRIDE-th cell through the peer loop in a pool of ``processes`` processes."""
    from lindyn.init import init_layers

    cells = [
        (init_layers(stats, depth, grid.width, dl, init, sd), eta, grid.max_steps)
        for init in grid.inits
        for depth in grid.depth
        for eta, dl, sd in itertools.product(grid.eta, grid.delta, grid.seeds_of(init))
    ]
    sample = cells[::PEER_STRIDE]
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    os.environ.update(dict.fromkeys(threads, "1"))
    try:
        start = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes, _peer_init, (data.X, data.Y)) as pool:
            list(pool.imap_unordered(_peer_cell, sample, chunksize=1))
        wall = time.perf_counter() - start
    finally:
        for key, value in threads.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"wall": wall, "measured": len(sample), "cells": len(cells)}


# ---------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One line of the table."""

    part: str
    what: str
    value: str
    target: str = "—"
    status: str = "info"


def before_row() -> Row:
    """Files and bytes per run of the per-cell design, as the issue measured them."""
    return Row(
        "files and bytes per run",
        f"before, measured by the issue on commit {BEFORE['commit']} (one store a cell): "
        f"{BEFORE['files']:,} files, {size(BEFORE['bytes'])} for {BEFORE['cells']:,} cells",
        f"{BEFORE['files'] / BEFORE['cells']:.0f} files, {size(BEFORE['bytes'] / BEFORE['cells'])}",
    )


def seconds(x: float) -> str:
    if x >= 120:
        return f"{x:.0f} s ({int(x // 60)} min {x % 60:02.0f} s)"
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def size(x: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def percent(x: float) -> str:
    """A ratio as a percentage: whole percents from 10 %, two significant digits below."""
    return f"{x:.0%}" if x >= 0.1 else f"{x * 100:.2g}%"


def status(ok: bool) -> str:
    return "met" if ok else "missed"


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """The range of a part's rounds, when there are several."""
    if len(values) < 2:
        return ""
    return f" (range {min(values):.3g}–{max(values):.3g} over {len(values)} rounds)"


@dataclass
class State:
    """What one part hands to another."""

    default_work: Path | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- parts


def part_grid1536(opts: Options, state: State) -> list[Row]:
    import numba

    grid = opts.grid1536
    config = grid_config(grid)
    data, stats = commuting_stats(config)
    numba.set_num_threads(min(opts.cores, numba.config.NUMBA_NUM_THREADS))
    # Warm-up: load the compiled kernels from numba's cache (or compile them) once.
    warm = Grid(grid.depth[:2], grid.eta[:1], grid.delta[:1], grid.seeds[:1], max_steps=10)
    one_process_raw(stats, warm)
    one_process_sweep(stats, warm)
    targets = aggregate_targets(["commuting"])
    counter = itertools.count()

    def pipeline() -> dict[str, float]:
        work = make_workdir(opts.base / f"grid{grid.cells}-{next(counter)}", config)
        proc = snakemake(work, *targets, cores=opts.cores)
        n_blocks, elapsed = blocks_elapsed(work / "results")
        agg, agg_runs = aggregation_seconds(work / "results")
        if agg_runs != grid.cells:
            raise RuntimeError(f"aggregated {agg_runs} runs, the grid has {grid.cells}")
        files, nbytes, disk = census(work / "results")
        drop(work, opts)
        return {
            "wall": proc.wall,
            "cpu": proc.cpu,
            "maxrss": proc.maxrss_mb,
            "elapsed": elapsed,
            "blocks": n_blocks,
            "aggregate": agg,
            "files": files,
            "bytes": nbytes,
            "disk": disk,
        }

    contenders: dict[str, Callable[[], dict[str, float]]] = {
        "pipeline": pipeline,
        "sweep": lambda: one_process_sweep(stats, grid),
        "raw": lambda: one_process_raw(stats, grid),
    }
    names = list(contenders)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(opts.repeats):
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            runs[name].append(contenders[name]())
            print(
                f"  grid1536 round {round_ + 1}: {name} {runs[name][-1]['wall']:.1f} s",
                file=sys.stderr,
            )

    def med(name: str, key: str) -> float:
        return median([r[key] for r in runs[name]])

    def all_of(name: str, key: str) -> list[float]:
        return [r[key] for r in runs[name]]

    efficiency = [
        raw["wall"] / pipe["wall"] for raw, pipe in zip(runs["raw"], runs["pipeline"], strict=True)
    ]
    efficiency_sweep = [
        sw["wall"] / pipe["wall"] for sw, pipe in zip(runs["sweep"], runs["pipeline"], strict=True)
    ]
    check = peer_check(data, stats)
    peer = run_peer(data, stats, grid, opts.cores)
    projected = peer["wall"] * peer["cells"] / peer["measured"]
    state.notes.append(
        f"Peer loop check: product after {CHECK_STEPS} steps vs `naive_gd` "
        f"(depth 3, r 10, random init): relative difference {check:.1e}."
    )
    P = f"{grid.cells:,}-cell grid"
    wall = med("pipeline", "wall")
    cells = grid.cells
    rows = [
        Row(
            P,
            f"grid: {commuting_text(config)}, {grid.describe()}; {med('pipeline', 'blocks'):.0f} "
            "blocks (jobs)",
            "—",
        ),
        Row(
            P,
            f"`snakemake --cores {opts.cores}` to the aggregate outputs, fresh working copy: "
            "wall" + spread(all_of("pipeline", "wall")),
            seconds(wall),
            f"≤ {TARGETS['grid_wall']:.0f} s",
            status(wall <= TARGETS["grid_wall"]) if not opts.quick else "info",
        ),
        Row(
            P,
            "same run: CPU (user + sys of Snakemake and every job, children's rusage); "
            "largest process",
            f"{seconds(med('pipeline', 'cpu'))}; {med('pipeline', 'maxrss'):.0f} MB",
        ),
        Row(
            P,
            "same run: sum of the blocks' `elapsed_seconds` (simulation time inside the jobs, "
            "1 thread each); CPU outside it",
            f"{seconds(med('pipeline', 'elapsed'))}; "
            f"{seconds(med('pipeline', 'cpu') - med('pipeline', 'elapsed'))}",
        ),
        Row(
            P,
            "same run: aggregation (aggregate job's log: open, combine, write)",
            seconds(med("pipeline", "aggregate")),
        ),
        Row(
            P,
            f"same cells through `lindyn.sweep`, one process ({opts.cores} numba threads): wall; "
            "its `elapsed_seconds`" + spread(all_of("sweep", "wall")),
            f"{seconds(med('sweep', 'wall'))}; {seconds(med('sweep', 'elapsed'))}",
        ),
        Row(
            P,
            f"same cells × all {grid.max_steps:,} steps through the raw kernel `fastgd.Sweep` "
            f"(no stopping rule), one process ({opts.cores} numba threads): wall"
            + spread(all_of("raw", "wall")),
            f"{seconds(med('raw', 'wall'))} "
            f"({med('raw', 'wall') / (cells * grid.max_steps) * 1e9:.0f} ns a step and run)",
        ),
        Row(
            P,
            "pipeline efficiency = (one-process kernel wall × cores) / (pipeline wall × cores), "
            "kernel = raw `fastgd.Sweep` row, same cores; median of per-round ratios",
            percent(median(efficiency)),
            f"≥ {TARGETS['efficiency']:.0%}",
            status(median(efficiency) >= TARGETS["efficiency"]) if not opts.quick else "info",
        ),
        Row(
            P,
            "same ratio with the one-process `lindyn.sweep` row as the kernel",
            percent(median(efficiency_sweep)),
        ),
        Row(
            P,
            f"peer: plain `multiprocessing` script, {opts.cores} processes, full-data numpy loop "
            f"(`naive_gd`'s update, loss every step, all {grid.max_steps:,} steps, no early stop); "
            f"measured on {peer['measured']} of {peer['cells']} cells "
            f"({seconds(peer['wall'])}), **projected** to all cells",
            f"{seconds(projected)} ({projected / wall:.1f}× the pipeline's wall)",
        ),
    ]
    files, disk = med("pipeline", "files"), med("pipeline", "disk")
    rows.append(
        Row(
            "files and bytes per run",
            f"after (measured): the {cells:,}-cell grid, everything under results/ "
            f"({files:,.0f} files, {size(disk)} on disk, {size(med('pipeline', 'bytes'))} "
            "apparent)",
            f"{files / cells:.3g} files, {size(disk / cells)}",
        )
    )
    return rows


def run_default_study(opts: Options, name: str) -> tuple[Path, dict[str, float]]:
    """`make run` (`lindyn run`) on a fresh copy. Returns the copy and its timings."""
    work = make_workdir(opts.base / name, opts.default_config)
    run = run_measured([sys.executable, "-m", "lindyn", "run", "--cores", str(opts.cores)], work)
    if run.returncode != 0:
        raise RuntimeError(f"lindyn run failed in {work}:\n{run.stdout}{run.stderr}")
    agg, _ = aggregation_seconds(work / "results")
    files, _, disk = census(work / "results")
    return work, {
        "wall": run.wall,
        "cpu": run.cpu,
        "aggregate": agg,
        "files": files,
        "disk": disk,
    }


def part_default(opts: Options, state: State) -> list[Row]:
    results = []
    work = None
    for round_ in range(opts.repeats):
        if work is not None:
            drop(work, opts)
        work, result = run_default_study(opts, f"default-{round_}")
        results.append(result)
        print(f"  default round {round_ + 1}: {result['wall']:.1f} s", file=sys.stderr)
    state.default_work = work

    def med(key: str) -> float:
        return median([r[key] for r in results])

    cells = config_cells(opts.default_config)
    config = opts.default_config
    P = "default study"
    return [
        Row(
            P,
            f"`make run` after install: the repository's config.yaml ({len(config['datasets'])} "
            f"datasets, {cells:,} cells, {config['max_steps']:,} steps), figures and report, "
            f"fresh working copy; `lindyn run --cores {opts.cores}` (`snakemake`, then "
            "`snakemake --report`): wall" + spread([r["wall"] for r in results]),
            seconds(med("wall")),
            f"≤ {TARGETS['default_wall']:.0f} s",
            status(med("wall") <= TARGETS["default_wall"]) if not opts.quick else "info",
        ),
        Row(P, "same run: CPU (user + sys of every process)", seconds(med("cpu"))),
        Row(
            P,
            "aggregation, all datasets (aggregate jobs' logs); files and bytes under results/",
            f"{seconds(med('aggregate'))}; {med('files'):,.0f} files, {size(med('disk'))}",
        ),
    ]


def part_grid100k(opts: Options, state: State) -> list[Row]:
    grid = opts.grid100k
    config = grid_config(grid)
    targets = aggregate_targets(["commuting"])
    work = make_workdir(opts.base / f"grid{grid.cells}", config)
    dry = []
    for round_ in range(opts.repeats):
        dry.append(snakemake(work, "-n", *targets, cores=opts.cores))
        print(f"  grid100k dry run {round_ + 1}: {dry[-1].wall:.1f} s", file=sys.stderr)
    n_blocks, planned = scheduled(dry[-1].stdout)
    if planned != grid.cells:
        raise RuntimeError(f"the dry run schedules {planned} cells, the grid has {grid.cells}")
    print(f"  grid100k: full run of {grid.cells} cells ...", file=sys.stderr)
    full = snakemake(work, *targets, cores=opts.cores)
    agg, agg_runs = aggregation_seconds(work / "results")
    _, elapsed = blocks_elapsed(work / "results")
    files, nbytes, disk = census(work / "results")
    drop(work, opts)
    dry_wall = median([p.wall for p in dry])
    P = f"{grid.cells:,}-cell grid"
    live = not opts.quick
    rows = [
        Row(P, f"grid: {commuting_text(config)}, {grid.describe()}; {n_blocks} blocks (jobs)", "—"),
        Row(
            P,
            f"`snakemake -n` (DAG build and plan; schedules all {planned:,} cells): wall"
            + spread([p.wall for p in dry]),
            seconds(dry_wall),
            f"≤ {TARGETS['dry_run']:.0f} s",
            status(dry_wall <= TARGETS["dry_run"]) if live else "info",
        ),
        Row(
            P,
            "`snakemake -n`: peak memory (max RSS)",
            f"{median([p.maxrss_mb for p in dry]):.0f} MB",
        ),
        Row(
            P,
            f"`snakemake --cores {opts.cores}` to the aggregate outputs, fresh copy, one run: wall",
            seconds(full.wall),
            f"≤ {TARGETS['grid100k_wall'] / 60:.0f} min",
            status(full.wall <= TARGETS["grid100k_wall"]) if live else "info",
        ),
        Row(
            P,
            "same run: CPU (children's rusage); sum of the blocks' `elapsed_seconds`; "
            "largest process",
            f"{seconds(full.cpu)}; {seconds(elapsed)}; {full.maxrss_mb:.0f} MB",
        ),
        Row(
            P,
            f"same run: aggregation of {agg_runs:,} runs (aggregate job's log: open, combine, "
            "write)",
            seconds(agg),
        ),
        Row(
            P,
            "same run: files under results/",
            f"{files:,}",
            f"≤ {TARGETS['grid100k_files']:,}",
            status(files <= TARGETS["grid100k_files"]) if live else "info",
        ),
        Row(
            P,
            "same run: bytes under results/ (on disk; apparent)",
            f"{size(disk)}; {size(nbytes)}",
        ),
        Row(
            "files and bytes per run",
            f"after (measured): the {grid.cells:,}-cell grid, everything under results/",
            f"{files / grid.cells:.3g} files, {size(disk / grid.cells)}",
        ),
    ]
    return rows


def part_incremental(opts: Options, state: State) -> list[Row]:
    from lindyn.config import load_config

    work = state.default_work
    baseline = "the last run of the default part"
    if work is None or not (work / "results" / "report.md").exists():
        print("  incremental: running the default study first ...", file=sys.stderr)
        work, result = run_default_study(opts, "default-incremental")
        baseline = f"run here once: {seconds(result['wall'])}"
    before = load_config(work / "config.yaml")
    tiles = before["blocks"]
    eta_new = float(f"{max(before['grid']['eta']) * 1.5:.4g}")
    delta_new = float(max(before["grid"]["delta"]) + 1)
    variants = {
        "nothing (unchanged config)": {},
        f"one η ({eta_new:g})": {"eta": eta_new},
        f"one δ ({delta_new:g})": {"delta": delta_new},
        f"one η ({eta_new:g}) and one δ ({delta_new:g})": {"eta": eta_new, "delta": delta_new},
    }
    P = "incremental"
    grid_text = ", ".join(f"{k} {before['grid'][k]}" for k in ("eta", "delta"))
    rows = [
        Row(
            P,
            f"default study ({config_cells(before):,} cells; {grid_text}; tiles η "
            f"{tiles['eta']}, δ {tiles['delta']}), finished ({baseline}); then values "
            "appended to config.yaml and `snakemake -n` run",
            "—",
        )
    ]
    try:
        for label, append in variants.items():
            after = copy.deepcopy(before)
            for axis, value in append.items():
                after["grid"][axis].append(value)
            (work / "config.yaml").write_text(yaml.safe_dump(after, sort_keys=False))
            walls = []
            for _ in range(opts.repeats):
                proc = snakemake(work, "-n", cores=opts.cores)
                walls.append(proc.wall)
            n_blocks, cells = scheduled(proc.stdout)
            new = config_cells(after) - config_cells(before)
            if not append:
                rows.append(
                    Row(P, f"append {label}: cells scheduled", f"{cells}", "0", status(cells == 0))
                )
                continue
            full = all(len(before["grid"][axis]) % tiles[axis] == 0 for axis in append)
            bound = 1 if full else max(tiles[axis] for axis in append)
            target = "= new cells (last tile full)" if full else f"≤ {bound}× new cells"
            rows.append(
                Row(
                    P,
                    f"append {label}: cells the simulate jobs would simulate / new cells "
                    f"(`snakemake -n`: {seconds(median(walls))})",
                    f"{cells:,} in {n_blocks} blocks / {new:,} ({cells / new:.2f}×)",
                    target,
                    status(cells <= bound * new),
                )
            )
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(before, sort_keys=False))
    return rows


SECTIONS: dict[str, Callable[[Options, State], list[Row]]] = {
    "grid1536": part_grid1536,
    "default": part_default,
    "grid100k": part_grid100k,
    "incremental": part_incremental,
}


# ---------------------------------------------------------------------------- output


def machine() -> str:
    import numba
    import snakemake as snakemake_module
    from run import cpu_model  # benchmarks/run.py, beside this script

    cpu = cpu_model()
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}, "
        f"snakemake {getattr(snakemake_module, '__version__', '?')}"
    )


def table(rows: list[Row]) -> str:
    # "files and bytes per run" rows gathered at the end, whichever part made them
    ordered = [r for r in rows if r.part != "files and bytes per run"]
    ordered += [r for r in rows if r.part == "files and bytes per run"]
    lines = ["| part | measurement | value | target | status |", "|---|---|---|---|---|"]
    for row in ordered:
        cells = [row.part, row.what, row.value, row.target, row.status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def report(rows: list[Row], header: dict[str, str], notes: list[str]) -> str:
    parts = [f"## Pipeline ({header['command']}, {header['date'][:10]})", ""]
    parts += [f"- **{key}**: {value}" for key, value in header.items()]
    parts += ["", table(rows), ""]
    parts += [
        "Walls are medians over the rounds of a part (rotating order in the 1,536-cell "
        "part); CPU is user + sys of the command and every process it waited for "
        "(`wait4` rusage); the peer's time is projected from the cells it ran (stated "
        "in its row). Every pipeline run is on a fresh copy of the workflow in a "
        "temporary directory.",
    ]
    parts += notes
    return "\n".join(parts) + "\n"


def write_results(path: Path, text: str) -> None:
    """Replace the "## Pipeline" sections at the end of ``path`` (append if there are none)."""
    old = path.read_text() if path.exists() else ""
    match = re.search(r"^## Pipeline", old, re.MULTILINE)
    head = old[: match.start()] if match else (old.rstrip("\n") + "\n\n" if old else "")
    path.write_text(head + text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 round")
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts: {', '.join(PARTS)}")
    parser.add_argument("--repeats", type=int, help="rounds of the cheap parts (default 3)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake cores (default 2)")
    parser.add_argument("--output", type=Path, help="markdown file whose Pipeline sections to set")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--workdir", type=Path, help="where the working copies go (default tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the working copies")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    parts = [p for p in PARTS if p in parts]
    output = args.output
    if output is None and not args.quick and parts == list(PARTS):
        output = RESULTS_MD
    if args.no_write:
        output = None

    base = Path(tempfile.mkdtemp(prefix="lindyn-pipeline-", dir=args.workdir))
    opts = make_options(args, base)
    state = State()
    rows: list[Row] = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        for part in parts:
            print(f"part {part} ...", file=sys.stderr)
            rows += SECTIONS[part](opts, state)
            print(f"part {part} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"working copies kept in {base}", file=sys.stderr)
    if "grid1536" in parts or "grid100k" in parts:
        rows.append(before_row())
    load_after = os.getloadavg()
    command = " ".join([".venv/bin/python benchmarks/pipeline.py", *(argv or sys.argv[1:])])
    header = {
        "command": f"`{command.strip()}`",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load average": (
            f"{load_before[0]:.2f} before, {load_after[0]:.2f} after "
            f"(1-minute; {os.cpu_count()} cores)"
        ),
        "cores": f"{opts.cores} (Snakemake `--cores`; numba threads of the one-process rows)",
        "repeats": f"{opts.repeats} round(s) a cheap part; the 100k run and the peer once",
        "runtime": seconds(time.perf_counter() - started),
    }
    if opts.quick:
        header["mode"] = "`--quick`: tiny grids and short runs, a smoke test, not the benchmark"
    text = report(rows, header, state.notes)
    print(text)
    if output is not None:
        write_results(output, text)
        print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
