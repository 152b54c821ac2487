"""The workflow on a real single-node Slurm, through the Slurm workflow profile.

``tests/cluster/start_slurm.sh`` installs (apt) and starts Slurm without systemd, cgroups or
slurmdbd, so job status comes from ``squeue`` as on a site without accounting. A tiny grid
with two datasets runs on it; the ``bad`` dataset's file is not an archive, so its
``dataset_stats`` job fails on the cluster. Then the file is repaired and the workflow rerun.

Checked: the failure is reported as a failed Slurm job and retried with more memory, while
the other dataset goes through; the rerun plans only the failed dataset's jobs; every run
store equals the one a local run makes; cells are batched (group jobs of one CPU and the
runtime of their cells); the aggregation is one Slurm job with ``aggregate.workers`` CPUs and
as many Dask workers; the figures, the report and the rules of ``cluster.localrules`` run on
the submitting host.

Slurm's status polling dominates the time (a wave of jobs is seen done 12, 33 or 64 s after
it starts), so the second run keeps ``dataset_stats`` and ``aggregate`` local through
``cluster.localrules``. Every cluster run is wrapped in ``timeout``. The tests are skipped,
loudly, only when Slurm cannot be installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from lindyn.config import grid_cells

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
CLUSTER = Path(__file__).resolve().parent / "cluster"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CLUSTER_TIMEOUT = 240  # seconds, for one snakemake run on the cluster
CELLS_PER_JOB = 4
WORKERS = 2
# Attributes that say when a store was made, not what is in it (content_sha256 hashes all
# attributes, `created` included).
VOLATILE_ATTRS = {"created", "elapsed_seconds", "content_sha256"}
PIDFILES = {
    "/run/munge/munged.pid": "munged",
    "/run/slurm/slurmctld.pid": "slurmctld",
    "/run/slurm/slurmd.pid": "slurmd",
}

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
    "aggregate": {"workers": WORKERS},
    # dataset_stats goes to Slurm too, so that its failure is a failed Slurm job
    "cluster": {"localrules": []},
}
CELLS = {name: len(grid_cells(CONFIG, name)) for name in CONFIG["datasets"]}
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
    # Cancel whatever a failed or timed-out test left queued, then stop what we started.
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


def _workdir(path: Path, valid_data: bool) -> Path:
    path.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow")
    (path / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
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


def _cluster(workdir: Path, prefix: str, *args: str, timeout: int = CLUSTER_TIMEOUT) -> Run:
    """snakemake with the Slurm profile, bounded by `timeout`; output kept in the workdir."""
    env = {
        **os.environ,
        "LINDYN_CELLS_PER_JOB": str(CELLS_PER_JOB),
        "LINDYN_SLURM_PARTITION": "debug",
    }
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
    return Run(proc.returncode, output)


def _job_stats(output: str) -> dict[str, int]:
    """The `Job stats` table of a snakemake (dry) run: rule -> count."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _sbatch_calls(output: str, kind: str) -> list[str]:
    """`sbatch` command lines (--verbose) of a rule or group, e.g. 'rule_aggregate'."""
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
    config = {**CONFIG, "cluster": {"localrules": list(SECOND_RUN_LOCALRULES)}}
    (cluster / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
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
        assert "output: results/datasets/bad.zarr" in block, block
        assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", block), block
    # mem_mb doubling with the attempt
    memory = [
        int(re.search(r"--mem (\d+)", call)[1])
        for call in _sbatch_calls(first.output, "rule_dataset_stats_wildcards_bad")
    ]
    assert memory == [4000, 8000, 16000]
    # keep-going: the good dataset went all the way through, its batches held up by nothing
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", first.output)
    assert finished.count("simulate") == CELLS["good"]
    assert finished.count("aggregate") == 1


def test_rerun_after_failure_plans_only_the_missing_jobs(pipeline):
    plan = _job_stats(pipeline.plan.output)
    stats = dict(plan)
    assert stats.pop("dataset_stats") == 1
    assert stats.pop("simulate") == CELLS["bad"]
    assert stats.pop("aggregate") == 1
    # besides the figures, the report and `all`, which the first run did not reach
    figures = {rule for rule in stats if rule.startswith("figure_")}
    assert len(figures) == 7 and set(stats) == {"all", "report", *figures}
    assert set(stats.values()) == {1}
    # and all of it for the bad dataset: the good one's stores are done
    planned = re.findall(r"wildcards: dataset=(\w+)", pipeline.plan.output)
    assert planned and set(planned) == {"bad"}
    assert len(planned) == 1 + CELLS["bad"] + 1
    # the rerun did that and no more, and then nothing was left to do
    assert pipeline.second.returncode == 0, pipeline.second.output[-5000:]
    assert _job_stats(pipeline.second.output) == plan
    assert "Nothing to be done" in pipeline.final_plan.output


def test_every_run_store_equals_the_local_one(pipeline):
    compared = 0
    for dataset in CONFIG["datasets"]:
        for cell in grid_cells(CONFIG, dataset):
            rel = (
                "results/runs/{dataset}/depth{depth}/width{width}/{init}/seed{seed}/"
                "eta{eta}_delta{delta}.zarr".format(**cell)
            )
            on_cluster = xr.open_zarr(pipeline.cluster / rel)
            local = xr.open_zarr(pipeline.local / rel)
            assert set(on_cluster.variables) == set(local.variables), rel
            for name in local.variables:
                np.testing.assert_array_equal(
                    on_cluster[name].values, local[name].values, err_msg=f"{rel}: {name}"
                )
                assert on_cluster[name].attrs == local[name].attrs, f"{rel}: {name}"
            keep = set(local.attrs) - VOLATILE_ATTRS
            assert {k: on_cluster.attrs.get(k) for k in keep} == {k: local.attrs[k] for k in keep}
            assert set(on_cluster.attrs) == set(local.attrs)
            compared += 1
    assert compared == sum(CELLS.values())


def test_cells_are_batched_into_serial_group_jobs(pipeline):
    groups = [
        call
        for call in _sbatch_calls(pipeline.first.output + pipeline.second.output, "")
        if "/slurm_logs/group_" in call
    ]
    # 8 cells per dataset in batches of 4: two jobs per dataset
    assert len(groups) == sum(-(-n // CELLS_PER_JOB) for n in CELLS.values())
    for call in groups:
        # one cell at a time: the CPU and memory of one cell, the runtime of four (2 min each)
        assert "--cpus-per-task=1" in call and "--mem 1000" in call, call
        assert f"-t {2 * CELLS_PER_JOB}" in call, call
        assert "-p debug" in call, call


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
    assert len(figures) == 7
    assert local == {"all", "report", *figures, *SECOND_RUN_LOCALRULES}  # + cluster.localrules
    assert not re.findall(r"^rule (\w+):", second, re.M)  # only batches of simulate on Slurm
    assert not any(f"--comment rule_{rule}" in second for rule in local)
    assert _sbatch_calls(second, "")
