"""Shared fixtures: a tiny real pipeline run, made once per test session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY_CONFIG = {
    "datasets": {
        "commuting": {"loader": "commuting", "options": {"d": 6, "p": 3, "n": 60, "seed": 1}},
        "autoencoder": {
            "loader": "autoencoder",
            "options": {"d": 6, "rank": 2, "n": 200, "sigma": 0.3, "seed": 0},
        },
        "digits": {"loader": "digits", "options": {"n": 400, "seed": 0}},
    },
    "grid": {
        "depth": [1, 2],
        "eta": [0.1, 0.2],
        "delta": [2.0, 3.0],
        "init": ["aligned", "random"],
        "seed": [0],
    },
    "width": 3,
    "max_steps": 2000,
    "log_density": 10,
    "tol": 1e-8,
    "max_components": 8,
    "aggregate": {"workers": 1},
    "departure": {
        "perturbation": [0, 0.01, 0.1],
        "seeds": [0],
        "depth": [2],
        "eta": [0.1],
        "delta": [2.0],
        "d": 4,
        "p": 2,
        "n": 20,
        "max_steps": 400,
    },
}


def make_workdir(path: Path, config: dict) -> Path:
    """A copy of the workflow with its own config, ready for `snakemake`."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow", dirs_exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure the output is in the assertion message."""
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def pytest_collection_modifyitems(config, items):
    """Run the real-Slurm tests last.

    snakemake-executor-plugin-slurm asks `scontrol` for the cluster's settings whenever
    Snakemake starts; once the Slurm test has installed Slurm and stopped its daemons,
    that question waits 10 s for a controller that is gone, in every later `snakemake`.
    """
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


# A results directory made in this process, as the workflow's jobs make it (`lindyn
# dataset`, one `lindyn sweep` per block, lindyn.aggregate.aggregate) but without
# Snakemake: for the module tests of lindyn.aggregate and lindyn.query. Its largest step
# makes ηs_1 > 2, so half of its runs diverge.
IN_PROCESS_CONFIG = {
    "datasets": {
        "commuting": {"loader": "commuting", "options": {"d": 5, "p": 3, "n": 50, "seed": 2}}
    },
    "grid": {
        "depth": [1, 2],
        "eta": [0.1, 2.5],
        "delta": [2.0, 3.0],
        "init": ["aligned", "random"],
        "seed": [0, 1],
    },
    "width": 3,
    "max_steps": 1500,
    "log_density": 10,
    "tol": 1e-8,
    "max_components": 8,
    "blocks": {"depth": 1, "eta": 2, "delta": 2, "seed": 1},
}


@pytest.fixture(scope="session")
def in_process_results(tmp_path_factory) -> Path:
    """IN_PROCESS_CONFIG's results directory, with ``config.yaml`` beside it."""
    from lindyn.aggregate import aggregate
    from lindyn.blocks import block_path, plan_blocks
    from lindyn.cli import main
    from lindyn.config import validated
    from lindyn.paths import stats_path

    root = tmp_path_factory.mktemp("in_process")
    (root / "config.yaml").write_text(yaml.safe_dump(IN_PROCESS_CONFIG, sort_keys=False))
    config = validated(IN_PROCESS_CONFIG)
    results = root / "results"
    for dataset, entry in config["datasets"].items():
        stats = str(stats_path(results, dataset))
        options = json.dumps(entry["options"])
        assert (
            main(
                [
                    "dataset",
                    entry["loader"],
                    "--options",
                    options,
                    "--label",
                    dataset,
                    "--out",
                    stats,
                ]
            )
            == 0
        )
        blocks = plan_blocks(config, dataset)
        settings = [
            f"--{key.replace('_', '-')}={config[key]}"
            for key in ("max_steps", "log_density", "tol", "max_components")
        ]
        for block in blocks:
            path = block_path(block, str(results))
            arguments = block.sweep_arguments().split()
            assert (
                main(
                    [
                        "sweep",
                        "--stats",
                        stats,
                        "--label",
                        dataset,
                        *arguments,
                        *settings,
                        "--out",
                        path,
                    ]
                )
                == 0
            )
        aggregate([(block_path(block, str(results)), block) for block in blocks], results)
    return results


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """The real workflow, run once on a tiny grid; returns its working directory."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny_pipeline"), TINY_CONFIG)
    run_snakemake(workdir)
    return workdir


# ---------------------------------------------------------------- reliability summary
# Tests of bad input and injected faults (tests/test_reliability.py,
# tests/test_config_schema.py) count what they tried here; the counts are printed
# at the end of the test run. "runs lost" counts grid cells that, after recovery,
# lack a store equal to a clean run's, plus damaged stores that were read as valid.

RELIABILITY: dict[str, int] = {}
# Which tallies are bad inputs and which are injected faults (for the totals).
_INPUT_WORDS = ("bad", "broken")
_FAULT_WORDS = ("kill", "damaged", "stale", "diverging", "killed", "concurrent", "disk")


def record_reliability(what: str, count: int = 1) -> None:
    """Add ``count`` to the reliability tally ``what`` (e.g. "workflow kills (SIGKILL)")."""
    RELIABILITY[what] = RELIABILITY.get(what, 0) + count


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RELIABILITY:
        return
    terminalreporter.section("reliability summary")
    for what, count in sorted(RELIABILITY.items()):
        terminalreporter.write_line(f"{what:>44}: {count}")
    inputs = sum(n for k, n in RELIABILITY.items() if k.startswith(_INPUT_WORDS))
    faults = sum(n for k, n in RELIABILITY.items() if any(w in k for w in _FAULT_WORDS))
    terminalreporter.write_line(
        f"bad inputs tried: {inputs}; faults injected: {faults}; "
        f"runs lost: {RELIABILITY.get('runs lost', 0)}; "
        f"results silently wrong: {RELIABILITY.get('results silently wrong', 0)}"
    )
