"""The workflow on a real single-node Slurm, through the Slurm workflow profile.

``tests/cluster/start_slurm.sh`` installs (apt) and starts Slurm without systemd, cgroups or
slurmdbd, so job status comes from ``squeue`` as on a site without accounting. A tiny grid
with two datasets runs on it; the ``bad`` dataset's file is not an archive, so its
``dataset_stats`` job fails on the cluster. Then the file is repaired and the workflow rerun.

Checked: the failure is reported as a failed Slurm job and retried with more memory, while
the other dataset goes through; the rerun plans only the failed dataset's jobs; every block
store equals the one a local run makes; each block is one Slurm job, with
``simulate.threads`` CPUs and the runtime the rule gives its cells; the aggregation is one
Slurm job with ``aggregate.workers`` CPUs and as many Dask workers; the figures, the report
and the rules of ``cluster.localrules`` run on the submitting host. Then, in a copy of the
finished directory, with ``aggregate.cluster: slurm``: switching where Dask runs reruns
nothing, and a forced aggregation runs on the submitting host with a dask-jobqueue
``SLURMCluster`` of two worker jobs (seen in ``squeue`` while it runs, in the scheduler's
log and in the jobs' own logs) and gives the same tables as the local aggregation.

Slurm's status polling dominates the time (a wave of jobs is seen done 12, 33 or 64 s after
it starts), so the second run keeps ``dataset_stats`` and ``aggregate`` local through
``cluster.localrules``. Every cluster run is wrapped in ``timeout``. The tests are skipped,
loudly, only when Slurm cannot be installed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from lindyn.blocks import Block, block_path, plan_blocks
from lindyn.config import validated
from lindyn.paths import AGGREGATES, CSV_TABLES, aggregate_path
from lindyn.report.figures import FIGURES
from lindyn.store import open_block, open_store

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
CLUSTER = Path(__file__).resolve().parent / "cluster"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CLUSTER_TIMEOUT = 240  # seconds, for one snakemake run on the cluster
WORKERS = 2
THREADS = 2  # of a block job: its Slurm CPUs (the local reference runs them on one core)
DASK_JOBS = 2
PIDFILES = {
    "/run/munge/munged.pid": "munged",
    "/run/slurm/slurmctld.pid": "slurmctld",
    "/run/slurm/slurmd.pid": "slurmd",
}
# What a block store is compared on, cluster against local.
BLOCK_VARIABLES = ("status", "stop_step", "u", "loss", "crossing_step")

CONFIG = {
    "datasets": {
        "good": {"loader": "commuting", "options": {"d": 6, "p": 4, "seed": 0}},
        "bad": {"loader": "npz", "options": {"path": "data/bad.npz"}},
    },
    "grid": {
        "depth": [1, 2],
        "eta": [0.05, 0.1],
        "delta": [1.0],
        "init": ["aligned", "random"],
        "seed": [0],
    },
    "width": 3,
    "max_steps": 300,
    "log_density": 5,
    "tol": 1.0e-6,
    "max_components": 4,
    # one block per init: two blocks of 4 cells per dataset
    "blocks": {"depth": 2, "eta": 2, "delta": 1, "seed": 1},
    "simulate": {"threads": THREADS},
    "aggregate": {"workers": WORKERS},
    # dataset_stats goes to Slurm too, so that its failure is a failed Slurm job
    "cluster": {"localrules": []},
    # the grid's jobs only: the departure study is one more job of the same kind
    "departure": {"enabled": False},
}
SECOND_RUN_LOCALRULES = ("dataset_stats", "aggregate")


def _alive(pidfile: str, name: str) -> bool:
    try:
        pid = Path(pidfile).read_text().strip()
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


@pytest.fixture(scope="module")
def slurm():
    """A running single-node Slurm; stopped afterwards if this fixture started it."""
    was_up = all(_alive(pidfile, name) for pidfile, name in PIDFILES.items())
    proc = subprocess.run(
        ["timeout", "600", "bash", str(CLUSTER / "start_slurm.sh")],
        capture_output=True,
        text=True,
    )
    if proc.returncode == 3:
        reason = (
            "SLURM TESTS SKIPPED: Slurm could not be installed on this machine "
            f"(tests/cluster/start_slurm.sh exit 3): {proc.stderr.strip()[-600:]}"
        )
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    assert proc.returncode == 0, (
        f"Slurm is installed but did not start (exit {proc.returncode}):\n"
        f"{proc.stdout}\n{proc.stderr}"
    )
    prefix = f"lindyntest{os.getpid()}"
    yield prefix
    # Cancel whatever a failed or timed-out test left queued (Snakemake's jobs and the Dask
    # worker jobs are all named with the prefix), then stop what we started.
    queue = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True)
    ours = [
        job
        for job, name in (line.split() for line in queue.stdout.splitlines())
        if name.startswith(prefix)
    ]
    if ours:
        subprocess.run(["scancel", *ours], check=False)
    if not was_up:
        subprocess.run(["bash", str(CLUSTER / "stop_slurm.sh")], check=False)


def _write_npz(path: Path) -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 5))
    Y = X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((60, 3))
    np.savez(path, X=X, Y=Y)


def _planned_blocks() -> dict[str, list[Block]]:
    """Each dataset's blocks, planned from CONFIG validated where its data file exists."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("data").mkdir()
        _write_npz(Path("data/bad.npz"))
        config = validated(CONFIG)
    return {name: plan_blocks(config, name) for name in CONFIG["datasets"]}


BLOCKS = _planned_blocks()
CELLS = {name: sum(block.cells for block in blocks) for name, blocks in BLOCKS.items()}


def _write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _workdir(path: Path, valid_data: bool) -> Path:
    path.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow")
    _write_config(path, CONFIG)
    (path / "data").mkdir()
    if valid_data:
        _write_npz(path / "data/bad.npz")
    else:
        (path / "data/bad.npz").write_text("not an .npz archive: dataset_stats fails on it\n")
    return path


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


def _cluster(workdir: Path, prefix: str, *args: str, timeout: int = CLUSTER_TIMEOUT) -> Run:
    """snakemake with the Slurm profile, bounded by `timeout`; output kept in the workdir."""
    env = {**os.environ, "LINDYN_SLURM_PARTITION": "debug"}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            "timeout",
            "-k",
            "15",
            str(timeout),
            *SNAKEMAKE,
            "--workflow-profile",
            "workflow/profiles/slurm",
            "--slurm-no-account",
            "--slurm-jobname-prefix",
            prefix,
            *args,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    output = proc.stdout + proc.stderr
    log = workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.txt')))}.txt"
    log.write_text(output)
    assert proc.returncode not in (124, 137), f"timed out after {timeout} s; output in {log}"
    return Run(proc.returncode, output, time.perf_counter() - start)


def _job_stats(output: str) -> dict[str, int]:
    """The `Job stats` table of a snakemake (dry) run: rule -> count."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _sbatch_calls(output: str, kind: str) -> list[str]:
    """`sbatch` command lines (--verbose) of a rule, e.g. 'rule_aggregate'."""
    return [
        line
        for line in output.splitlines()
        if line.startswith("sbatch call:") and f"--comment {kind}" in line
    ]


@dataclass
class Pipeline:
    local: Path
    cluster: Path
    first: Run
    plan: Run
    second: Run
    final_plan: Run


@pytest.fixture(scope="module")
def pipeline(slurm, tmp_path_factory) -> Pipeline:
    root = tmp_path_factory.mktemp("slurm")
    local = _workdir(root / "local", valid_data=True)
    cluster = _workdir(root / "cluster", valid_data=False)
    # The local reference (one core) runs while the first cluster run mostly waits on Slurm.
    reference = subprocess.Popen(
        [
            *SNAKEMAKE,
            "--workflow-profile",
            "workflow/profiles/default",
            "--cores",
            "1",
            "--until",
            "simulate",
        ],
        cwd=local,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = _cluster(cluster, slurm, "--verbose", "--until", "aggregate")
    reference_output, _ = reference.communicate(timeout=CLUSTER_TIMEOUT)
    assert reference.returncode == 0, f"local reference run failed:\n{reference_output}"
    shutil.copy(local / "data/bad.npz", cluster / "data/bad.npz")  # repair the data
    plan = _cluster(cluster, slurm, "--dry-run")
    _write_config(cluster, {**CONFIG, "cluster": {"localrules": list(SECOND_RUN_LOCALRULES)}})
    second = _cluster(cluster, slurm, "--verbose")
    final_plan = _cluster(cluster, slurm, "--dry-run")
    return Pipeline(local, cluster, first, plan, second, final_plan)


def test_failed_job_is_reported_failed_and_retried_with_more_memory(pipeline):
    first = pipeline.first
    assert first.returncode != 0
    # three attempts (retries: 2), each a failed Slurm job (status from squeue)
    errors = re.findall(r"^Error in rule (\w+):\n((?:[ \t]+.*\n)+)", first.output, re.M)
    assert len(errors) == 3, first.output[-5000:]
    for rule, block in errors:
        assert rule == "dataset_stats"
        assert "output: results/datasets/bad.zarr.zip" in block, block
        assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", block), block
    # mem_mb doubling with the attempt
    memory = [
        int(re.search(r"--mem (\d+)", call)[1])
        for call in _sbatch_calls(first.output, "rule_dataset_stats_wildcards_bad")
    ]
    assert memory == [4000, 8000, 16000]
    # keep-going: the good dataset went all the way through, held up by nothing
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", first.output)
    assert finished.count("simulate") == len(BLOCKS["good"])
    assert finished.count("aggregate") == 1


def test_rerun_after_failure_plans_only_the_missing_jobs(pipeline):
    plan = _job_stats(pipeline.plan.output)
    stats = dict(plan)
    assert stats.pop("dataset_stats") == 1
    assert stats.pop("simulate") == len(BLOCKS["bad"])
    assert stats.pop("aggregate") == 1
    # besides the figures, the report and `all`, which the first run did not reach
    figures = {rule for rule in stats if rule.startswith("figure_")}
    assert len(figures) == len(FIGURES) and set(stats) == {"all", "report", *figures}
    assert set(stats.values()) == {1}
    # and all of it for the bad dataset: the good one's stores are done
    planned = re.findall(r"wildcards: dataset=(\w+)", pipeline.plan.output)
    assert planned and set(planned) == {"bad"}
    assert len(planned) == 1 + len(BLOCKS["bad"]) + 1
    # the rerun did that and no more, and then nothing was left to do
    assert pipeline.second.returncode == 0, pipeline.second.output[-5000:]
    assert _job_stats(pipeline.second.output) == plan
    assert "Nothing to be done" in pipeline.final_plan.output


def test_every_block_store_equals_the_local_one(pipeline):
    compared = 0
    for blocks in BLOCKS.values():
        for block in blocks:
            rel = block_path(block)
            on_cluster = open_block(pipeline.cluster / rel, block.expected())
            local = open_block(pipeline.local / rel, block.expected())
            assert set(on_cluster.variables) == set(local.variables), rel
            for name in (*BLOCK_VARIABLES, *local.coords):
                np.testing.assert_array_equal(
                    on_cluster[name].values, local[name].values, err_msg=f"{rel}: {name}"
                )
            assert on_cluster.attrs["settings"] == local.attrs["settings"], rel
            assert on_cluster.attrs["stats_hash"] == local.attrs["stats_hash"], rel
            compared += on_cluster["status"].size
            assert on_cluster["status"].size == block.cells
    assert compared == sum(CELLS.values())


def test_each_block_is_one_slurm_job(pipeline):
    output = pipeline.first.output + pipeline.second.output
    calls = _sbatch_calls(output, "rule_simulate")
    submitted = sorted(
        re.search(r"--comment rule_simulate_wildcards_(\S+)", call)[1] for call in calls
    )
    # one job per block (wildcards dataset, block), each block once: no group jobs
    assert submitted == sorted(
        f"{block.dataset}_{block.name}" for blocks in BLOCKS.values() for block in blocks
    )
    assert "/slurm_logs/group_" not in output
    # simulate.threads CPUs, and the rule's runtime for the block's cells (attempt 1)
    cells = {block.cells for blocks in BLOCKS.values() for block in blocks}
    assert cells == {4}
    runtime = 5 + math.ceil(4 * CONFIG["max_steps"] / 1e6)
    for call in calls:
        assert f"--cpus-per-task={THREADS}" in call, call
        assert f"-t {runtime} " in call and "--mem 1000" in call and "-p debug" in call, call


def test_aggregation_is_one_slurm_job_with_local_dask_workers(pipeline):
    calls = _sbatch_calls(pipeline.first.output + pipeline.second.output, "rule_aggregate")
    assert len(calls) == 1  # the good dataset's, in the first run (then a local rule)
    assert f"--cpus-per-task={WORKERS}" in calls[0], calls[0]
    assert f"--mem {2000 * WORKERS}" in calls[0], calls[0]
    for dataset in CONFIG["datasets"]:
        log = (pipeline.cluster / f"results/logs/aggregate/{dataset}.log").read_text()
        assert log.count("Register worker") == WORKERS, log
        assert re.search(rf"aggregated {CELLS[dataset]} runs", log), log


def test_small_rules_run_on_the_submitting_host(pipeline):
    second = pipeline.second.output
    local = set(re.findall(r"^localrule (\w+):", second, re.M))
    figures = {rule for rule in local if rule.startswith("figure_")}
    assert len(figures) == len(FIGURES)
    assert local == {"all", "report", *figures, *SECOND_RUN_LOCALRULES}  # + cluster.localrules
    assert set(re.findall(r"^rule (\w+):", second, re.M)) == {"simulate"}  # only blocks on Slurm
    assert not any(f"--comment rule_{rule}" in second for rule in local)
    assert _sbatch_calls(second, "rule_simulate")


# ---------------------------------------------------------------- aggregation on a SLURMCluster


class QueueWatch(threading.Thread):
    """Polls `squeue` for jobs of one name: job id -> (states seen, CPUs)."""

    def __init__(self, name: str, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.interval = interval
        self.seen: dict[str, tuple[set[str], str]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            queue = subprocess.run(
                ["squeue", "-h", "-n", self.name_, "-o", "%i %T %C"],
                capture_output=True,
                text=True,
            )
            for line in queue.stdout.splitlines():
                job, state, cpus = line.split()
                self.seen.setdefault(job, (set(), cpus))[0].add(state)
            self.done.wait(self.interval)

    def __enter__(self) -> QueueWatch:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()


@dataclass
class DaskOnSlurm:
    workdir: Path
    reference: Path  # the finished pipeline, whose aggregates came from LocalClusters
    job_name: str
    plan: Run
    run: Run
    seen: dict[str, tuple[set[str], str]] = field(default_factory=dict)
    left: str = ""


@pytest.fixture(scope="module")
def dask_on_slurm(pipeline, slurm, tmp_path_factory) -> DaskOnSlurm:
    """The good dataset aggregated again, with `aggregate.cluster: slurm`, in a copy."""
    workdir = tmp_path_factory.mktemp("dask_on_slurm") / "cluster"
    shutil.copytree(pipeline.cluster, workdir, symlinks=True)
    job_name = f"{slurm}-dask"
    config = {
        **CONFIG,
        "aggregate": {
            "workers": WORKERS,
            "cluster": "slurm",
            "slurm": {
                "jobs": DASK_JOBS,
                "cores": 1,
                "memory": "1GB",
                "walltime": "00:10:00",
                "job_name": job_name,
            },
        },
    }
    _write_config(workdir, config)
    plan = _cluster(workdir, slurm, "--dry-run")
    shutil.rmtree(workdir / "results/aggregate/good")
    targets = [str(aggregate_path("results", "good", name)) for name in AGGREGATES]
    with QueueWatch(job_name) as watch:
        run = _cluster(workdir, slurm, "--verbose", *targets)
    # the worker jobs are cancelled when the aggregation closes its cluster
    for _ in range(40):
        left = subprocess.run(
            ["squeue", "-h", "-n", job_name, "-o", "%i %T"], capture_output=True, text=True
        ).stdout.strip()
        if not left:
            break
        time.sleep(0.25)
    return DaskOnSlurm(workdir, pipeline.cluster, job_name, plan, run, watch.seen, left)


def test_switching_the_dask_cluster_reruns_nothing(dask_on_slurm):
    assert "Nothing to be done" in dask_on_slurm.plan.output, dask_on_slurm.plan.output[-3000:]


def test_aggregation_runs_on_a_slurm_cluster_of_two_worker_jobs(dask_on_slurm):
    run = dask_on_slurm.run
    assert run.returncode == 0, run.output[-5000:]
    # the aggregate job itself runs on the submitting host and only orchestrates
    assert re.findall(r"^localrule (\w+):", run.output, re.M) == ["aggregate"]
    assert not _sbatch_calls(run.output, "rule_aggregate")
    # two Slurm jobs of the Dask workers, each seen running, with one CPU each
    seen = dask_on_slurm.seen
    assert len(seen) == DASK_JOBS, seen
    assert all("RUNNING" in states and cpus == "1" for states, cpus in seen.values()), seen
    assert not dask_on_slurm.left, f"worker jobs left in the queue: {dask_on_slurm.left}"
    # the scheduler (in the aggregate job) registered both, and named their Slurm jobs
    log = (dask_on_slurm.workdir / "results/logs/aggregate/good.log").read_text()
    assert log.count("Register worker") == DASK_JOBS, log
    match = re.search(r"SLURMCluster: (\d+) Dask workers in [\d.]+ s, Slurm jobs ([\d ]+)", log)
    assert match and int(match[1]) == DASK_JOBS, log
    assert sorted(match[2].split()) == sorted(seen), (match[2], seen)
    assert re.search(rf"aggregated {CELLS['good']} runs", log), log
    # and each worker job wrote its own log, where the worker connected to the scheduler
    worker_logs = sorted((dask_on_slurm.workdir / "results/logs/aggregate/good.dask").glob("*.err"))
    assert [p.name for p in worker_logs] == sorted(
        f"{dask_on_slurm.job_name}-{job}.err" for job in seen
    )
    for path in worker_logs:
        assert "Registered to" in path.read_text(), path.read_text()


def test_aggregation_on_slurm_gives_the_same_tables(dask_on_slurm):
    new = dask_on_slurm.workdir / "results/aggregate/good"
    old = dask_on_slurm.reference / "results/aggregate/good"
    for name in AGGREGATES:
        a, b = (open_store(d / f"{name}.zarr.zip", "aggregated") for d in (new, old))
        xr.testing.assert_equal(a.load(), b.load())
        for key in ("n_runs", "status_counts", "stats_hash"):
            assert a.attrs[key] == b.attrs[key], (name, key)
    csvs = sorted(p.name for p in old.glob("*.csv"))
    assert csvs == sorted(f"{name}.csv" for name in CSV_TABLES)
    for csv in csvs:
        assert (new / csv).read_text() == (old / csv).read_text(), csv
