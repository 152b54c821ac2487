"""The `lindyn` command line: help, the dataset → sweep contract, clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lindyn.cli import main
from lindyn.store import open_block


def _lindyn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lindyn", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["dataset", "sweep", "aggregate", "plan", "query", "run"])
def test_every_subcommand_has_help(command):
    proc = _lindyn(command, "--help")
    assert proc.returncode == 0
    assert "usage: lindyn " + command in proc.stdout


def test_dataset_then_sweep(tmp_path):
    stats = tmp_path / "stats.zarr.zip"
    block = tmp_path / "block.zarr.zip"
    assert (
        main(["dataset", "commuting", "-o", "d=6", "-o", "p=3", "-o", "n=40", "--out", str(stats)])
        == 0
    )
    sweep_args = ["--depth", "1", "2", "--eta", "0.1", "--delta", "2", "3", "--width", "3"]
    args = ["sweep", "--stats", str(stats), *sweep_args, "--init", "random", "--seed", "0", "5"]
    assert main([*args, "--max-steps", "300", "--out", str(block)]) == 0
    assert block.is_file()
    ds = open_block(block).load()
    assert dict(ds["status"].sizes) == {"depth": 2, "eta": 1, "delta": 2, "seed": 2}
    assert ds["seed"].values.tolist() == [0, 5] and str(ds["init"].values) == "random"
    assert ds["u"].dims == ("depth", "eta", "delta", "seed", "step", "component")
    assert int(ds["step"][-1]) == 300
    # converged early: logged values up to the stop step, NaN after it
    run = ds.sel(depth=2, eta=0.1, delta=2.0, seed=0)
    done = ds["step"] <= run["stop_step"]
    assert str(run["status"].values) == "converged"
    assert np.isfinite(run["loss"].where(done, drop=True)).all()
    assert np.isnan(run["loss"].where(~done, drop=True)).all()
    assert set(ds.attrs) >= {"stats_hash", "lindyn_version", "code_hash", "git_commit", "created"}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--eta", "-1"], "eta"),
        (["--eta", "nan"], "eta"),
        (["--depth", "0"], "depth"),
        (["--width", "0"], "width"),
        (["--max-steps", "0"], "max_steps"),
    ],
)
def test_bad_simulation_arguments_name_the_argument(tmp_path, args, named):
    stats = tmp_path / "stats.zarr.zip"
    assert (
        main(["dataset", "commuting", "-o", "d=4", "-o", "p=2", "-o", "n=20", "--out", str(stats)])
        == 0
    )
    base = {"--depth": "2", "--eta": "0.1", "--delta": "1", "--width": "2"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    out = tmp_path / "r.zarr.zip"
    proc = _lindyn("sweep", "--stats", str(stats), *flat, "--out", str(out))
    assert proc.returncode == 2
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_unknown_dataset_and_missing_store_are_clear(tmp_path):
    proc = _lindyn("dataset", "nope", "--out", str(tmp_path / "x.zarr.zip"))
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = _lindyn(
        "sweep",
        "--stats",
        str(tmp_path / "missing.zarr.zip"),
        "--depth",
        "2",
        "--eta",
        "0.1",
        "--delta",
        "1",
        "--out",
        str(tmp_path / "r.zarr.zip"),
    )
    assert proc.returncode == 2 and "missing.zarr.zip" in proc.stderr
