"""Reliability: bad data, divergence, interruption, corruption and concurrency, nothing lost.

* Broken data files fail through the CLI with one line naming the file, and
  nothing is ever unpickled.
* A step size beyond the stability limit gives a stored run with status
  ``diverged`` and its stop step; aggregation counts it and keeps it out of the
  phase-time, bound and path statistics.
* The real workflow, killed (SIGKILL to its process group) at several points and
  resumed with ``--unlock`` then ``--rerun-incomplete``, gives stores equal to
  a clean run's. Temporary ``*.tmp-*`` directories are never read as stores.
* A run store damaged after the fact is refused at aggregation, naming it and
  how to recompute it; following that advice gives the clean run's stores back.

Counts of what was tried go to the reliability summary (tests/conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import SNAKEMAKE, make_workdir, record_reliability, run_snakemake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lindyn.aggregate import combine_runs
from lindyn.cli import main as lindyn_main
from lindyn.config import grid_cells
from lindyn.store import StoreError, read_run, read_stats, write_run
from lindyn.zarrio import CHECKSUM_ATTR, verify_group

CONFIG = {
    "datasets": {
        "commuting": {"loader": "commuting", "options": {"d": 6, "p": 3, "n": 60, "seed": 1}}
    },
    "grid": {
        "depth": [1, 2],
        "eta": [0.2, 50.0],  # 50 is far beyond the stability limit 2/λ_max = 2 (scale: unit)
        "delta": [2.0],
        "init": ["aligned", "random"],
        "seed": [0],
    },
    "width": 3,
    "max_steps": 300,
    "log_density": 10,
    "tol": 1e-8,
    "max_components": 8,
    "aggregate": {"workers": 1},
}
AGGREGATES = ("trajectories", "phase_times", "bounds", "path")
# Explicit targets: the stores only (figures and the report have their own tests).
TARGETS = [f"results/aggregate/commuting/{name}.zarr" for name in AGGREGATES]
# Attributes and variables that differ between two runs of the same computation.
VOLATILE = {"created", "elapsed_seconds", "git_commit", CHECKSUM_ATTR}


def run_store(workdir: Path, cell: dict) -> Path:
    return workdir / (
        "results/runs/{dataset}/depth{depth}/width{width}/{init}/seed{seed}/"
        "eta{eta}_delta{delta}.zarr".format(**cell)
    )


CELLS = grid_cells(copy.deepcopy(CONFIG), "commuting")


# ---------------------------------------------------------------- store comparison


def final_stores(workdir: Path) -> list[str]:
    """Every store at a final path under results/, relative (no *.tmp-* directory)."""
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.zarr"))


def tmp_dirs(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.tmp-*"))


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def store_differences(a: Path, b: Path) -> list[str]:
    """How two stores differ, ignoring provenance that changes from run to run."""
    ds_a, ds_b = (xr.open_zarr(p, chunks=None).load() for p in (a, b))
    out = []
    attrs_a = {k: v for k, v in ds_a.attrs.items() if k not in VOLATILE}
    attrs_b = {k: v for k, v in ds_b.attrs.items() if k not in VOLATILE}
    if _canonical(attrs_a) != _canonical(attrs_b):
        keys = {k for k in attrs_a.keys() | attrs_b.keys() if attrs_a.get(k) != attrs_b.get(k)}
        out.append(f"attrs differ: {sorted(keys)}")
    ds_a = ds_a.drop_vars([v for v in ds_a.variables if v in VOLATILE])
    ds_b = ds_b.drop_vars([v for v in ds_b.variables if v in VOLATILE])
    if set(ds_a.variables) != set(ds_b.variables):
        out.append(f"variables differ: {sorted(set(ds_a.variables) ^ set(ds_b.variables))}")
    for name in set(ds_a.variables) & set(ds_b.variables):
        try:
            xr.testing.assert_identical(ds_a[name].variable, ds_b[name].variable)
        except AssertionError as err:
            out.append(f"{name}: {str(err)[:200]}")
    return out


def compare_with_clean(workdir: Path, clean: Path) -> tuple[list[str], int]:
    """Differences of every store from the clean run's, and the number of runs lost."""
    problems = []
    mine, theirs = final_stores(workdir), final_stores(clean)
    if mine != theirs:
        problems.append(f"store sets differ: {sorted(set(mine) ^ set(theirs))}")
    for rel in sorted(set(mine) & set(theirs)):
        problems += [f"{rel}: {d}" for d in store_differences(workdir / rel, clean / rel)]
    lost = sum(
        not run_store(workdir, cell).exists()
        or verify_group(run_store(workdir, cell)) is not True
        or bool(store_differences(run_store(workdir, cell), run_store(clean, cell)))
        for cell in CELLS
    )
    return problems, lost


# ---------------------------------------------------------------- the clean run


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """The reliability grid (with diverging cells), run once without interference."""
    workdir = make_workdir(tmp_path_factory.mktemp("reliability_clean"), CONFIG)
    run_snakemake(workdir, *TARGETS)
    return workdir


@pytest.mark.slow
def test_clean_run_stores_are_complete_and_verified(clean_run):
    # Parallel jobs (--cores 2) wrote sibling stores into the same directories.
    assert len({run_store(clean_run, c) for c in CELLS}) == len(CELLS) == 8
    for cell in CELLS:
        path = run_store(clean_run, cell)
        assert verify_group(path) is True, path
        read_run(path, load=True)
    assert verify_group(clean_run / "results/datasets/commuting.zarr") is True
    assert not tmp_dirs(clean_run)


@pytest.mark.slow
def test_divergence_is_stored_counted_and_excluded(clean_run):
    """η = 50 diverges: stored with its stop step, counted, kept out of the statistics."""
    diverged = [c for c in CELLS if c["eta"] == "50.0"]
    for cell in CELLS:
        ds = read_run(run_store(clean_run, cell), load=True)
        if cell in diverged:
            assert ds.attrs["status"] == "diverged"
            stop = ds.attrs["stop_step"]
            assert 1 <= stop < CONFIG["max_steps"]
            logged = ds["loss"].sel(step=ds["step"] <= stop).values
            assert np.isfinite(logged[0]) and not np.isfinite(ds["loss"].values[-1])
        else:
            assert ds.attrs["status"] == "converged"
    agg = clean_run / "results/aggregate/commuting"
    phase = xr.open_zarr(agg / "phase_times.zarr").load()
    assert json.loads(phase.attrs["status_counts"]) == {"converged": 4, "diverged": 4}
    assert phase.attrs["n_runs"] == 8
    bad = phase["status"] == "diverged"
    assert int(bad.sum()) > 0
    for name in ("t_measured", "rel_error_flow", "in_bracket", "bracket_position"):
        assert phase[name].where(bad).isnull().all(), name
    assert phase["t_measured"].where(~bad).notnull().any()
    bounds = xr.open_zarr(agg / "bounds.zarr").load()
    assert bounds["max_violation"].where(bounds["status"] == "diverged").isnull().all()
    path = xr.open_zarr(agg / "path.zarr").load()
    assert path["min_rel_dist_seq"].where(path["status"] == "diverged").isnull().all()
    # The trajectory itself is kept, with its status and stop step.
    traj = xr.open_zarr(agg / "trajectories.zarr").load()
    sel = dict(depth=2, width=3, init="aligned", seed=0, eta=50.0, delta=2.0)
    assert str(traj["status"].sel(**sel).values) == "diverged"
    assert np.isfinite(traj["loss"].sel(**sel).isel(step=0).values)
    record_reliability("diverging runs stored and handled", len(diverged))


# ---------------------------------------------------------------- interruption


def _runs_present(workdir: Path) -> int:
    return sum(run_store(workdir, c).exists() for c in CELLS)


def _wait_and_kill(proc: subprocess.Popen, workdir: Path, point: str) -> str:
    """Wait for the kill point, SIGKILL the whole process group; say what was caught."""
    start = time.monotonic()
    before = _runs_present(workdir)
    caught = "finished first"
    while proc.poll() is None and time.monotonic() < start + 300:
        elapsed = time.monotonic() - start
        if point == "after 1 s" and elapsed >= 1:
            caught = point
        elif point == "after 3 s" and elapsed >= 3:
            caught = point
        elif point == "some run stores" and _runs_present(workdir) >= min(before + 2, 8):
            caught = f"{_runs_present(workdir)} run stores present"
        elif point == "aggregate writing" and list(
            (workdir / "results/aggregate").glob("*/*.tmp-*")
        ):
            caught = "an aggregate store half-written"
        if caught != "finished first":
            break
        time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Every process of the group is gone: no job outlives the kill to race the rerun.
    for _ in range(200):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    else:
        pytest.fail("a job survived SIGKILL of the workflow's process group")
    return caught


def _incomplete(workdir: Path) -> list[str]:
    markers = workdir / ".snakemake/incomplete"
    if not markers.exists():
        return []
    return sorted(base64.b64decode(p.name).decode() for p in markers.iterdir() if p.is_file())


def _check_after_kill(workdir: Path, clean: Path, pid: int) -> None:
    """What a kill leaves: complete final stores, and temporary directories nobody reads."""
    # A store at its final path is complete, even when Snakemake marks it incomplete.
    for cell in CELLS:
        if run_store(workdir, cell).exists():
            read_run(run_store(workdir, cell), load=True)
    # A killed writer's temporary directory is never read as a store, even a complete one.
    stale = [workdir / t for t in tmp_dirs(workdir)]
    absent = [c for c in CELLS if not run_store(workdir, c).exists()]
    if absent:  # as if killed between finishing a store and renaming it into place
        final = run_store(workdir, absent[0])
        fake = final.with_name(f"{final.name}.tmp-{pid}")  # a pid no writer has here
        fake.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_store(clean, absent[0]), fake)
        stale.append(fake)
        record_reliability("stale *.tmp-* stores injected")
    for path in stale:
        with pytest.raises(StoreError, match="temporary directory"):
            read_run(path, load=True)
        with pytest.raises(StoreError, match="temporary directory"):
            combine_runs([path])


@pytest.mark.slow
def test_killed_workflow_resumes_with_nothing_lost(clean_run, tmp_path):
    """SIGKILL at four points in a row, each time resuming; then compare with a clean run.

    Each resumed run is itself killed at the next point, so resuming is shown to be
    interruptible too. Recovery is what Snakemake prescribes after a kill: its lock
    survives, so `--unlock`, then `--rerun-incomplete` (it marks the outputs of
    the jobs it was running as incomplete, even a store already renamed into place).
    """
    workdir = make_workdir(tmp_path, CONFIG)
    points = ["after 1 s", "after 3 s", "some run stores", "aggregate writing"]
    for i, point in enumerate(points):
        proc = subprocess.Popen(
            [*SNAKEMAKE, "--cores", "2", "--rerun-incomplete", *TARGETS],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, jobs included
        )
        caught = _wait_and_kill(proc, workdir, point)
        record_reliability("workflow kills (SIGKILL)")
        print(f"killed at {point!r}: {caught}; marked incomplete: {_incomplete(workdir)}")
        _check_after_kill(workdir, clean_run, pid=4_000_000 + i)
        if i < len(points) - 1 and (workdir / ".snakemake/locks").exists():
            run_snakemake(workdir, "--unlock")

    proc = run_snakemake(workdir, "--rerun-incomplete", *TARGETS, check=False)
    if proc.returncode != 0:  # the lock left by the last kill
        assert "--unlock" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        run_snakemake(workdir, "--unlock")
        run_snakemake(workdir, "--rerun-incomplete", *TARGETS)

    assert not tmp_dirs(workdir), "a stale temporary directory was left behind"
    problems, lost = compare_with_clean(workdir, clean_run)
    record_reliability("runs lost", lost)
    record_reliability("run stores compared with a clean run", len(CELLS))
    assert lost == 0
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- a killed writer


KILLED_WRITER = """
import os, signal, sys
from lindyn.store import _atomic
from lindyn.zarrio import write_group

def write(tmp):
    write_group(tmp, {"x": (("x",), [1.0, 2.0], {})}, {"kind": "lindyn.run"})
    os.kill(os.getpid(), signal.SIGKILL)  # complete, but never renamed into place

_atomic(sys.argv[1], write)
"""


def test_killed_writer_leaves_only_an_unreadable_tmp_which_the_next_write_removes(
    tmp_path, small_run
):
    record, stats = small_run
    final = tmp_path / "run.zarr"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final)])
    assert proc.wait(timeout=300) == -signal.SIGKILL
    record_reliability("writers killed mid-write")
    assert not final.exists()
    (tmp,) = tmp_path.glob("run.zarr.tmp-*")
    assert tmp.name == f"run.zarr.tmp-{proc.pid}"  # unique per writer process
    assert verify_group(tmp)  # its content is even complete, yet:
    for read in (lambda p: read_run(p, load=True), read_stats, lambda p: combine_runs([p])):
        with pytest.raises(StoreError, match="temporary directory"):
            read(tmp)
    write_run(record, stats, final, dataset="commuting")
    assert not list(tmp_path.glob("*.tmp-*"))
    assert verify_group(final)


# ---------------------------------------------------------------- corruption


@pytest.fixture(scope="module")
def small_run():
    """A converged and a diverged run record, computed in-process."""
    from lindyn.datasets import load_dataset
    from lindyn.simulate import CellSpec, run_cells
    from lindyn.stats import dataset_stats

    data = load_dataset("commuting", **CONFIG["datasets"]["commuting"]["options"])
    stats = dataset_stats(data.X, data.Y, data.X_clean, data.meta)
    specs = [CellSpec(2, 0.2, 2.0, 0, "random", 3), CellSpec(2, 50.0, 2.0, 0, "aligned", 3)]
    records = run_cells(stats, specs, 300, 10, 1e-8, 8)
    assert [r.status for r in records] == ["converged", "diverged"]
    return records[0], stats


def _edit_json(path: Path, change) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _edit_attrs_everywhere(store: Path, key: str, value) -> None:
    """Change a store attribute consistently in .zattrs and .zmetadata (a careful edit)."""
    _edit_json(store / ".zattrs", lambda a: a.__setitem__(key, value))
    _edit_json(store / ".zmetadata", lambda m: m["metadata"][".zattrs"].__setitem__(key, value))


DAMAGE = {
    "chunk deleted": lambda s: (s / "u/0.0").unlink(),
    "chunk truncated": lambda s: (s / "loss/0").write_bytes((s / "loss/0").read_bytes()[:16]),
    "chunk emptied": lambda s: (s / "crossing_step/0.0").write_bytes(b""),
    "chunk from another array": lambda s: shutil.copy(s / "loss/0", s / "nuclear_norm/0"),
    "one byte flipped": lambda s: (s / "u/0.0").write_bytes(
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]))((s / "u/0.0").read_bytes())
    ),
    "variable deleted": lambda s: shutil.rmtree(s / "dist_seq"),
    ".zarray deleted": lambda s: (s / "u/.zarray").unlink(),
    ".zattrs edited": lambda s: _edit_json(s / ".zattrs", lambda a: a.update(status="diverged")),
    ".zmetadata edited": lambda s: _edit_json(
        s / ".zmetadata", lambda m: m["metadata"][".zattrs"].update(eta=0.3)
    ),
    ".zattrs and .zmetadata edited alike": lambda s: _edit_attrs_everywhere(s, "depth", 3),
    "variable attrs edited alike": lambda s: (
        _edit_json(s / "u/.zattrs", lambda a: a.update(units="m")),
        _edit_json(s / ".zmetadata", lambda m: m["metadata"]["u/.zattrs"].update(units="m")),
    ),
    ".zmetadata deleted": lambda s: (s / ".zmetadata").unlink(),
    ".zmetadata truncated": lambda s: (s / ".zmetadata").write_text(
        (s / ".zmetadata").read_text()[:100]
    ),
}


@pytest.fixture(scope="module")
def pristine(small_run, tmp_path_factory) -> Path:
    record, stats = small_run
    path = tmp_path_factory.mktemp("pristine") / "good.zarr"
    return write_run(record, stats, path, dataset="commuting")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_run_store_is_refused_naming_it_and_the_cure(tmp_path, pristine, damage):
    good, bad = pristine, tmp_path / "bad.zarr"
    shutil.copytree(good, bad)
    assert verify_group(bad)
    DAMAGE[damage](bad)
    record_reliability("run stores damaged after the fact")
    try:
        read_run(bad, load=True)
    except StoreError as err:
        message = str(err)
    else:
        record_reliability("runs lost", 1)  # damaged yet read as valid
        pytest.fail(f"{damage}: not detected")
    assert str(bad) in message and f"rm -r {bad}" in message and "rerun" in message
    with pytest.raises(StoreError) as info:
        combine_runs([good, bad])
    assert str(bad) in str(info.value) and str(good) not in str(info.value)
    read_run(good, load=True)


def test_all_damaged_runs_are_named_at_once(tmp_path, pristine):
    paths = [Path(shutil.copytree(pristine, tmp_path / f"run{i}.zarr")) for i in range(4)]
    DAMAGE["chunk deleted"](paths[1])
    DAMAGE["chunk truncated"](paths[3])
    record_reliability("run stores damaged after the fact", 2)
    with pytest.raises(StoreError) as info:
        combine_runs(paths)
    message = str(info.value)
    assert message.startswith("2 of 4 run stores cannot be used")
    assert message.rstrip().endswith(f"rm -r {paths[1]} {paths[3]}")


def test_store_without_checksum_is_still_read(tmp_path, small_run):
    """Stores written before checksums were recorded stay usable (metadata still checked)."""
    record, stats = small_run
    path = write_run(record, stats, tmp_path / "old.zarr", dataset="commuting")
    _edit_json(path / ".zattrs", lambda a: a.pop(CHECKSUM_ATTR))
    _edit_json(path / ".zmetadata", lambda m: m["metadata"][".zattrs"].pop(CHECKSUM_ATTR))
    assert verify_group(path) is False
    read_run(path, load=True)


def test_checksum_costs_little(tmp_path, small_run):
    record, stats = small_run
    path = write_run(record, stats, tmp_path / "run.zarr", dataset="commuting")
    timings = {}
    for name, call in (
        ("verify", lambda: verify_group(path)),
        ("open", lambda: read_run(path, lazy=True, verify=False)),
    ):
        call()
        start = time.perf_counter()
        for _ in range(10):
            call()
        timings[name] = (time.perf_counter() - start) / 10
    print(
        f"per run store: verify {timings['verify'] * 1e3:.1f} ms, "
        f"lazy open {timings['open'] * 1e3:.1f} ms"
    )
    assert timings["verify"] < 0.5


def test_checksum_covers_strings_scalars_and_empty_arrays(tmp_path):
    from lindyn.zarrio import IntegrityError, write_group

    variables = {
        "name": (("i",), np.array(["a", "bé", "c"]), {"long_name": "read by zarr"}),
        "i": (("i",), np.arange(3), {}),
        "scalar": ((), 1.5, {}),
        "empty": (("j",), np.zeros(0), {}),
    }
    path = tmp_path / "g.zarr"
    write_group(path, variables, {"nan": float("nan"), "list": [1, 2]})
    assert verify_group(path)
    (chunk,) = (path / "name").glob("0")
    shutil.copy(path / "i" / "0", chunk)
    record_reliability("run stores damaged after the fact")
    with pytest.raises(IntegrityError, match="'name'"):
        verify_group(path)


@pytest.mark.slow
def test_damage_found_by_the_workflow_and_cured_by_its_advice(clean_run, tmp_path):
    workdir = tmp_path / "wd"
    shutil.copytree(clean_run, workdir, symlinks=True)
    damaged = [run_store(workdir, CELLS[1]), run_store(workdir, CELLS[6])]
    DAMAGE["chunk deleted"](damaged[0])
    DAMAGE[".zattrs and .zmetadata edited alike"](damaged[1])
    record_reliability("run stores damaged after the fact", 2)
    proc = run_snakemake(workdir, "--forcerun", "aggregate", *TARGETS, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "2 of 8 run stores cannot be used" in out, out[-3000:]
    advice = re.search(
        r"^delete them and rerun the pipeline to recompute them: rm -r (.+)$", out, re.MULTILINE
    )
    assert advice, out[-3000:]
    named = advice.group(1).split()
    assert sorted(named) == sorted(str(p.relative_to(workdir)) for p in damaged)
    for rel in named:  # follow the advice
        shutil.rmtree(workdir / rel)
    run_snakemake(workdir, *TARGETS)
    problems, lost = compare_with_clean(workdir, clean_run)
    record_reliability("runs lost", lost)
    assert lost == 0 and not problems, "\n".join(problems)


# ---------------------------------------------------------------- bad data files


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class _Payload:
    """Unpickling this creates the marker file: proof that something unpickled."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_payload(marker: Path) -> bytes:
    payload = _Payload()
    payload.marker = str(marker)
    return pickle.dumps(payload)


def _evil_npz(marker: Path) -> bytes:
    payload = _Payload()
    payload.marker = str(marker)
    X = np.empty(2, dtype=object)
    X[:] = [payload, payload]
    return _npz_bytes(X=X, Y=np.zeros((2, 1)))


def _huge_header() -> bytes:
    """Valid .npy headers announcing 4·10¹² floats, followed by 32 bytes of data."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2)))
    header["shape"] = (10**12, 4)
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    member = npy.getvalue() + bytes(32)
    return _zip_of(**{"X.npy": member, "Y.npy": member})


def _zip_of(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


def _bad_compression() -> bytes:
    content = bytearray(_npz_bytes(X=np.ones((4, 2)), Y=np.ones((4, 1))))
    content[8:10] = (99).to_bytes(2, "little")  # first local header: unknown method
    start = content.rfind(b"PK\x01\x02")  # and its central-directory entry
    content[start + 10 : start + 12] = (99).to_bytes(2, "little")
    return bytes(content)


rng = np.random.default_rng(0)
GOOD = _npz_bytes(X=rng.standard_normal((30, 4)), Y=rng.standard_normal((30, 2)))
BROKEN = {
    "empty": b"",
    "text": b"X,Y\n1,2\n",
    "pickle of arrays": pickle.dumps({"X": np.ones((3, 2)), "Y": np.ones((3, 1))}),
    "gzip": gzip.compress(GOOD),
    "truncated in half": GOOD[: len(GOOD) // 2],
    "truncated by one byte": GOOD[:-1],
    "no Y": _npz_bytes(X=np.ones((5, 2))),
    "X 1-d": _npz_bytes(X=np.ones(5), Y=np.ones((5, 1))),
    "X no rows": _npz_bytes(X=np.ones((0, 2)), Y=np.ones((0, 1))),
    "rows differ": _npz_bytes(X=np.ones((5, 2)), Y=np.ones((4, 1))),
    "Y 3-d": _npz_bytes(X=np.ones((5, 2)), Y=np.ones((5, 1, 1))),
    "NaN in X": _npz_bytes(X=np.full((5, 2), np.nan), Y=np.ones((5, 1))),
    "inf in Y": _npz_bytes(X=np.ones((5, 2)), Y=np.full((5, 1), np.inf)),
    "strings": _npz_bytes(X=np.array([["a", "b"]] * 5), Y=np.ones((5, 1))),
    "member not .npy": _zip_of(**{"X.npy": b"not an array", "Y.npy": b"nor this"}),
    "huge shape in header": _huge_header(),
    "unknown compression": _bad_compression(),
}


def _run_dataset_cli(path: Path, out: Path) -> tuple[int, str]:
    """``lindyn dataset npz --option path=PATH`` in-process; exit status and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = lindyn_main(["dataset", "npz", "--option", f"path={path}", "--out", str(out)])
    shutil.rmtree(out, ignore_errors=True)
    return status, err.getvalue()


def _assert_clean_failure(status: int, message: str, path: Path) -> None:
    assert status != 0
    assert message.count("\n") == 1 and message.endswith("\n"), message
    assert message.startswith("lindyn dataset: error: "), message
    assert str(path.resolve()) in message or str(path) in message, message
    assert "Traceback" not in message


@pytest.fixture
def no_unpickling(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    yield calls
    assert not calls, "something tried to unpickle"


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_data_file_fails_in_one_line_naming_it(tmp_path, case, no_unpickling):
    path = tmp_path / "data.npz"
    path.write_bytes(BROKEN[case])
    record_reliability("bad data files tried")
    _assert_clean_failure(*_run_dataset_cli(path, tmp_path / "out.zarr"), path)


def test_directory_instead_of_file(tmp_path, no_unpickling):
    record_reliability("bad data files tried")
    _assert_clean_failure(*_run_dataset_cli(tmp_path, tmp_path / "out.zarr"), tmp_path)


@st.composite
def damaged_npz(draw) -> bytes:
    content = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete"]))
        if not content:
            break
        at = draw(st.integers(0, len(content) - 1))
        if kind == "truncate":
            del content[at:]
        elif kind == "flip":
            content[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            content[at : at + len(chunk)] = chunk
        elif kind == "insert":
            content[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del content[at : at + draw(st.integers(1, 64))]
    return bytes(content)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("broken")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(content=st.one_of(damaged_npz(), st.binary(max_size=2048)))
def test_generated_broken_files_fail_cleanly_or_load(content, scratch, no_unpickling):
    """A damaged archive either still loads (damage in values or slack) or fails in one line."""
    path = scratch / "generated.npz"
    path.write_bytes(content)
    record_reliability("bad data files tried")
    status, message = _run_dataset_cli(path, scratch / "out.zarr")
    if status != 0:
        _assert_clean_failure(status, message, path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["object array with a pickle payload", "truncated", "pickle"])
def test_broken_data_file_through_the_real_cli(tmp_path, case):
    marker = tmp_path / "UNPICKLED"
    content = {
        "object array with a pickle payload": _evil_npz(marker),
        "truncated": GOOD[: len(GOOD) // 3],
        "pickle": _pickle_payload(marker),
    }[case]
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    record_reliability("bad data files tried")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lindyn",
            "dataset",
            "npz",
            "--option",
            f"path={path}",
            "--out",
            str(tmp_path / "out.zarr"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    _assert_clean_failure(proc.returncode, proc.stderr, path)
    assert not marker.exists(), "the file was unpickled"
    assert not (tmp_path / "out.zarr").exists()
