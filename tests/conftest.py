"""Shared fixtures: a tiny real pipeline run, made once per test session."""

from __future__ import annotations

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
