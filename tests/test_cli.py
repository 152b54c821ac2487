"""The `lindyn` command line: help, the dataset → simulate contract, clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from lindyn.cli import main


def _lindyn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lindyn", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["dataset", "simulate", "aggregate", "query"])
def test_every_subcommand_has_help(command):
    proc = _lindyn(command, "--help")
    assert proc.returncode == 0
    assert "usage: lindyn " + command in proc.stdout


def test_dataset_then_simulate(tmp_path):
    stats = tmp_path / "stats.zarr"
    run = tmp_path / "run.zarr"
    assert (
        main(["dataset", "commuting", "-o", "d=6", "-o", "p=3", "-o", "n=40", "--out", str(stats)])
        == 0
    )
    assert (
        main(
            [
                "simulate",
                "--stats",
                str(stats),
                "--depth",
                "2",
                "--eta",
                "0.1",
                "--delta",
                "2",
                "--width",
                "3",
                "--max-steps",
                "300",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    ds = xr.open_zarr(run)
    assert ds.attrs["depth"] == 2 and ds.attrs["eta"] == 0.1 and ds.attrs["init"] == "aligned"
    assert ds["u"].dims == ("step", "component")
    assert int(ds["step"][-1]) == 300
    # converged early: logged values up to the stop step, NaN after it
    done = ds["step"] <= ds.attrs["stop_step"]
    assert ds.attrs["status"] == "converged"
    assert np.isfinite(ds["loss"].where(done, drop=True)).all()
    assert np.isnan(ds["loss"].where(~done, drop=True)).all()
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
    stats = tmp_path / "stats.zarr"
    assert (
        main(["dataset", "commuting", "-o", "d=4", "-o", "p=2", "-o", "n=20", "--out", str(stats)])
        == 0
    )
    base = {"--depth": "2", "--eta": "0.1", "--delta": "1", "--width": "2"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    proc = _lindyn("simulate", "--stats", str(stats), *flat, "--out", str(tmp_path / "r.zarr"))
    assert proc.returncode == 2
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.zarr").exists()


def test_unknown_dataset_and_missing_store_are_clear(tmp_path):
    proc = _lindyn("dataset", "nope", "--out", str(tmp_path / "x.zarr"))
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = _lindyn(
        "simulate",
        "--stats",
        str(tmp_path / "missing.zarr"),
        "--depth",
        "2",
        "--eta",
        "0.1",
        "--delta",
        "1",
        "--out",
        str(tmp_path / "r.zarr"),
    )
    assert proc.returncode == 2 and "missing.zarr" in proc.stderr
