"""Reliability: bad data, divergence, interruption, corruption and concurrency, nothing lost.

* Broken data files fail through the CLI with one line naming the file, and
  nothing is ever unpickled.
* A step size beyond the stability limit gives cells with status ``diverged``
  and their stop step, in blocks whose other cells are bitwise what they are
  without the diverging step size; aggregation counts them and keeps them out
  of the phase-time, bound and path statistics.
* The real workflow, killed (SIGKILL to its process group) at several moments and
  rerun as the README says (``make run``, i.e. ``lindyn run``: it removes the lock the
  killed run left, then ``--rerun-incomplete``),
  gives block stores equal to a clean run's, cell for cell. Temporary ``*.tmp-*``
  files are never read as stores, and the next write of a store removes those of
  dead writers, never those of live ones.
* A block store damaged after the fact is refused when opened and at aggregation,
  naming it (every damaged block at once) and how to recompute it; following that
  advice gives the clean results back.

Counts of what was tried go to the reliability summary (tests/conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import gzip
import io
import itertools
import json
import multiprocessing
import os
import pickle
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest.mock
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import make_workdir, record_reliability, run_snakemake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import Crc32cCodec

import lindyn.store as store_module
from lindyn import query, report
from lindyn.aggregate import aggregate, combine_blocks
from lindyn.blocks import Block, block_path, plan_blocks
from lindyn.cli import main as lindyn_main
from lindyn.config import validated
from lindyn.paths import AGGREGATES, CSV_TABLES, aggregate_path
from lindyn.store import (
    StoreError,
    open_block,
    open_store,
    read_stats,
    write_block,
    write_store,
)
from lindyn.sweeps import sweep

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
    "blocks": {"depth": 1},  # 4 blocks of 2 cells, each with a diverging cell
    "aggregate": {"workers": 1},
}
SETTINGS = {k: CONFIG[k] for k in ("max_steps", "log_density", "tol", "max_components")}
BLOCKS = plan_blocks(validated(CONFIG), "commuting")
N_CELLS = sum(block.cells for block in BLOCKS)
CELL_DIMS = ("depth", "eta", "delta", "seed")
# Explicit targets: the stores only (figures and the report have their own tests).
TARGETS = [str(aggregate_path("results", "commuting", name)) for name in AGGREGATES]
# What a run is, for "runs lost": a cell whose values here differ from the clean run's.
RUN_VARIABLES = ("status", "stop_step", "u", "loss", "crossing_step")
# Attributes and variables that differ between two runs of the same computation.
VOLATILE = {"created", "elapsed_seconds", "git_commit"}


def test_the_reliability_grid():
    assert [b.name for b in BLOCKS] == [
        "aligned_w3_L0_e0_d0",
        "aligned_w3_L1_e0_d0",
        "random_w3_L0_e0_d0_s0",
        "random_w3_L1_e0_d0_s0",
    ]
    assert N_CELLS == 8


# ---------------------------------------------------------------- comparing stores


def _bitwise(a: xr.DataArray, b: xr.DataArray) -> bool:
    """Same dims, shape and values, floats bit for bit (NaN included)."""
    if a.dims != b.dims or a.shape != b.shape:
        return False
    if a.dtype.kind in "OUT" or b.dtype.kind in "OUT":
        return bool(np.all(a.values.astype(str) == b.values.astype(str)))
    return a.dtype == b.dtype and np.ascontiguousarray(a.values).tobytes() == (
        np.ascontiguousarray(b.values).tobytes()
    )


def cells_of(ds: xr.Dataset) -> list[dict]:
    """Every cell of a block, as a selection."""
    dims = [d for d in CELL_DIMS if d in ds.dims]
    values = [ds[d].values.tolist() for d in dims]
    return [dict(zip(dims, index, strict=True)) for index in itertools.product(*values)]


def cells_differing(ds: xr.Dataset, clean: xr.Dataset) -> int:
    """Cells of ``clean`` that ``ds`` lacks or holds with other values."""
    differing = 0
    for cell in cells_of(clean):
        try:
            same = all(_bitwise(ds[v].sel(cell), clean[v].sel(cell)) for v in RUN_VARIABLES)
        except (KeyError, ValueError):
            same = False
        differing += not same
    return differing


def dataset_differences(a: xr.Dataset, b: xr.Dataset) -> list[str]:
    """How two stores' contents differ, ignoring provenance that changes from run to run."""
    out = []
    attrs_a = {k: v for k, v in a.attrs.items() if k not in VOLATILE}
    attrs_b = {k: v for k, v in b.attrs.items() if k not in VOLATILE}
    if json.dumps(attrs_a, sort_keys=True, default=str) != json.dumps(
        attrs_b, sort_keys=True, default=str
    ):
        keys = {k for k in attrs_a.keys() | attrs_b.keys() if attrs_a.get(k) != attrs_b.get(k)}
        out.append(f"attrs differ: {sorted(keys)}")
    names_a = set(a.variables) - VOLATILE
    names_b = set(b.variables) - VOLATILE
    if names_a != names_b:
        out.append(f"variables differ: {sorted(names_a ^ names_b)}")
    for name in sorted(names_a & names_b):
        if not _bitwise(a[name], b[name]) or a[name].attrs != b[name].attrs:
            out.append(f"{name} differs")
    return out


def open_final(path: Path) -> xr.Dataset:
    """A store at its final path, loaded (every check of its reader passed)."""
    if path.parent.parent.name == "blocks":
        block = {b.name: b for b in BLOCKS}[path.name.removesuffix(".zarr.zip")]
        return open_block(path, block.expected()).load()
    if path.parent.name == "datasets":
        read_stats(path)  # its content hash, too
        return open_store(path, "statistics")
    return open_store(path, "aggregated")


def final_stores(workdir: Path) -> list[str]:
    """Every store at a final path under results/, relative (no *.tmp-* file)."""
    results = workdir / "results"
    found = results.rglob("*.zarr.zip")
    return sorted(str(p.relative_to(workdir)) for p in found)


def temporaries(workdir: Path) -> list[Path]:
    return sorted((workdir / "results").rglob("*.tmp-*"))


def compare_with_clean(workdir: Path, clean: Path) -> tuple[list[str], int]:
    """Differences of every store from the clean run's, and the number of runs lost."""
    problems = []
    mine, theirs = final_stores(workdir), final_stores(clean)
    if mine != theirs:
        problems.append(f"store sets differ: {sorted(set(mine) ^ set(theirs))}")
    lost = 0
    for rel in sorted(set(mine) & set(theirs)):
        try:
            ds = open_final(workdir / rel)
        except StoreError as err:
            problems.append(str(err))
            ds = None
        ref = open_final(clean / rel)
        if "/blocks/" in rel:
            lost += ref["status"].size if ds is None else cells_differing(ds, ref)
        if ds is not None:
            problems += [f"{rel}: {d}" for d in dataset_differences(ds, ref)]
    for block in BLOCKS:  # a block without a store: all its runs lost
        if not (workdir / block_path(block)).exists():
            lost += block.cells
    return problems, lost


def dead_pid() -> int:
    """The process id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def stale_name(final: Path, pid: int, host: str | None = None, suffix: str = "") -> Path:
    """A temporary sibling named as :func:`lindyn.store.write_atomically` names them."""
    return final.with_name(
        f"{final.name}.tmp-{host or socket.gethostname()}~{pid}~0123abcd{suffix}"
    )


# ---------------------------------------------------------------- in-process blocks


def simulate_block(stats, block: Block, kernel: str = "auto") -> xr.Dataset:
    """What a block job computes (``lindyn sweep`` with the block's arguments)."""
    return sweep(
        stats,
        block.depth,
        block.eta,
        block.delta,
        block.init,
        block.seed or (0,),
        block.width,
        **SETTINGS,
        kernel=kernel,
        dataset=block.dataset,
    )


def recompute_block(results: Path, block: Block) -> None:
    """The block job's command (workflow/rules/simulate.smk), run in-process."""
    args = [
        "sweep",
        "--stats",
        str(results / "datasets/commuting.zarr.zip"),
        "--label",
        "commuting",
        *shlex.split(block.sweep_arguments()),
        "--max-steps",
        str(SETTINGS["max_steps"]),
        "--log-density",
        str(SETTINGS["log_density"]),
        "--tol",
        str(SETTINGS["tol"]),
        "--max-components",
        str(SETTINGS["max_components"]),
        "--out",
        str(results.parent / block_path(block, results.name)),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert lindyn_main(args) == 0


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A results/ directory with the statistics and every block store, made in-process."""
    results = tmp_path_factory.mktemp("pristine") / "results"
    options = CONFIG["datasets"]["commuting"]["options"]
    with contextlib.redirect_stdout(io.StringIO()):
        status = lindyn_main(
            [
                "dataset",
                "commuting",
                *(f"--option={key}={value}" for key, value in options.items()),
                "--label",
                "commuting",
                "--out",
                str(results / "datasets/commuting.zarr.zip"),
            ]
        )
    assert status == 0
    stats = read_stats(results / "datasets/commuting.zarr.zip")
    for block in BLOCKS:
        write_block(simulate_block(stats, block), results.parent / block_path(block))
    return results


@pytest.fixture
def results(pristine, tmp_path) -> Path:
    """A fresh copy of the pristine results/ directory, to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "results"))


def block_pairs(results: Path) -> list[tuple[Path, Block]]:
    return [(results.parent / block_path(block, results.name), block) for block in BLOCKS]


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("init", ["aligned", "random"])
def test_a_diverging_cell_never_disturbs_its_block(pristine, init, kernel):
    """Cells beside a diverging one are bit for bit what they are without it.

    The diverging step size sits between two stable ones, so the engine repacks
    the runs after it across SIMD groups (9 or 18 runs a depth: 2 or 3 groups of 8 lanes).
    """
    stats = read_stats(pristine / "datasets/commuting.zarr.zip")
    kwargs = dict(init=init, seeds=[0, 1], width=3, **SETTINGS, kernel=kernel)
    grid = dict(depth=[1, 2], delta=[2.0, 3.0, 4.0])
    mixed = sweep(stats, eta=[0.2, 50.0, 0.1], **grid, **kwargs).load()
    stable = sweep(stats, eta=[0.2, 0.1], **grid, **kwargs).load()

    bad = mixed.sel(eta=50.0)
    assert (bad["status"] == "diverged").all()
    assert ((bad["stop_step"] >= 1) & (bad["stop_step"] < SETTINGS["max_steps"])).all()
    assert np.isfinite(bad["loss"].isel(step=0)).all()
    assert bad["loss"].where(bad["step"] > bad["stop_step"]).isnull().all()
    assert bad["bound_violation"].isnull().all()
    # The stable runs go on long after the diverging ones stopped.
    good = mixed.sel(eta=[0.2, 0.1])
    assert (good["status"] != "diverged").all()
    assert int(good["stop_step"].min()) > int(bad["stop_step"].max())
    for name in good.data_vars:
        assert _bitwise(good[name], stable[name]), name
    assert _bitwise(good["step"], stable["step"])
    record_reliability("diverging runs stored and handled", int(bad["status"].size))


# ---------------------------------------------------------------- damaged block stores


def _member_offset(path: Path, member: str) -> tuple[int, int]:
    """Where a stored (uncompressed) member's bytes start in the Zip file, and their size."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    raw = path.read_bytes()
    names, extra = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + names + extra, info.compress_size


def _members(path: Path, prefix: str) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [n for n in archive.namelist() if n.startswith(prefix)]


def _flip_byte(path: Path, member: str) -> None:
    start, size = _member_offset(path, member)
    raw = bytearray(path.read_bytes())
    raw[start + size // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _rewrite_zip(path: Path, change) -> None:
    """Rewrite the Zip file member by member (``change(name, data)``: new data, or None to drop).

    Every member kept gets a correct Zip CRC-32: a careful edit, not a torn file.
    """
    out = path.with_name("rewritten.zip")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info, data)
    os.replace(out, path)


def _drop_member(path: Path, member: str) -> None:
    _rewrite_zip(path, lambda name, data: None if name == member else data)


def _rewrite_block(path: Path, change) -> None:
    ds = open_block(path).load()
    change(ds)
    path.unlink()
    write_block(ds, path)


def _as_temporary(path: Path, other: Path) -> Path:
    """A complete copy of the block at a temporary name, as a killed writer leaves it."""
    tmp = stale_name(path, dead_pid())
    shutil.copy(path, tmp)
    return tmp


# Each takes (the block store, another block's store) and damages the first; it
# returns the path to hand to the readers when that is not the store itself.
DAMAGE = {
    "byte flipped in a chunk": lambda s, o: _flip_byte(s, _members(s, "u/c/")[0]),
    "byte flipped in the metadata": lambda s, o: _flip_byte(s, "zarr.json"),
    "truncated to half": lambda s, o: s.write_bytes(s.read_bytes()[: s.stat().st_size // 2]),
    "truncated by one byte": lambda s, o: s.write_bytes(s.read_bytes()[:-1]),
    "emptied": lambda s, o: s.write_bytes(b""),
    "chunk member removed": lambda s, o: _drop_member(s, _members(s, "loss/c/")[0]),
    "status chunk removed": lambda s, o: _drop_member(s, _members(s, "status/c/")[0]),
    "array metadata member removed": lambda s, o: _drop_member(s, "u/zarr.json"),
    "root metadata member removed": lambda s, o: _drop_member(s, "zarr.json"),
    "another block's store": lambda s, o: shutil.copy(o, s),
    "variable missing": lambda s, o: _rewrite_block(s, lambda ds: ds.__delitem__("status")),
    "attribute missing": lambda s, o: _rewrite_block(s, lambda ds: ds.attrs.pop("settings")),
    "a *.tmp-* file given": _as_temporary,
}


def _assert_refusal(message: str, path: Path) -> None:
    """The message names the store and, unless it is a temporary, the cure."""
    assert str(path) in message, message
    if ".tmp-" in path.name:
        assert "temporary" in message and "never read" in message, message
    else:
        assert f"rm -r {path}" in message and "make run" in message, message


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_block_store_is_refused_naming_it_and_the_cure(results, damage):
    pairs = block_pairs(results)
    (store, block), (other, _) = pairs[3], pairs[0]  # other: a block of the other init
    clean = open_block(store, block.expected()).load()
    given = DAMAGE[damage](store, other)
    bad = given if isinstance(given, Path) else store
    record_reliability("block stores damaged after the fact")
    try:
        read = open_block(bad, block.expected()).load()
    except StoreError as err:
        message = str(err)
    else:
        lost = cells_differing(read, clean)
        record_reliability("runs lost", lost)  # damaged yet read as valid
        pytest.fail(f"{damage}: not detected ({lost} runs read wrong)")
    _assert_refusal(message, bad)
    # At aggregation: only the damaged block is named.
    pairs[3] = (bad, block)
    with pytest.raises(StoreError) as info:
        combine_blocks(pairs)
    _assert_refusal(str(info.value), bad)
    assert not any(str(path) in str(info.value) for path, _ in pairs[:3])
    for path, good in pairs[:3]:
        open_block(path, good.expected()).load()


def test_block_rewritten_with_a_forged_zip_crc_still_fails_its_chunk_checksum(results):
    """A careful edit of a chunk (Zip CRC-32 recomputed) fails zarr's crc32c when read."""
    (store, block) = block_pairs(results)[3]
    member = _members(store, "u/c/")[0]
    _rewrite_zip(
        store,
        lambda name, data: (
            data[:20] + bytes([data[20] ^ 1]) + data[21:] if name == member else data
        ),
    )
    record_reliability("block stores damaged after the fact")
    ds = open_block(store, block.expected())  # lazy: chunks are checked when read
    with pytest.raises(ValueError, match="checksum"):
        ds["u"].values  # noqa: B018
    # Aggregation reads lazily too, and then names the block and the cure.
    with pytest.raises(StoreError) as info:
        aggregate(block_pairs(results), results)
    message = str(info.value)
    assert message.startswith("1 of 4 block stores have chunks that cannot be read"), message
    assert f"block store {store}: " in message and "checksum" in message
    assert message.endswith(f"rm {store}")


def test_all_damaged_blocks_are_named_at_once_and_the_advice_cures_them(results, tmp_path):
    pairs = block_pairs(results)
    clean = {path.name: open_block(path).load() for path, _ in pairs}
    DAMAGE["byte flipped in a chunk"](pairs[0][0], None)
    DAMAGE["chunk member removed"](pairs[1][0], None)
    DAMAGE["another block's store"](pairs[3][0], pairs[2][0])
    damaged = [pairs[0][0], pairs[1][0], pairs[3][0]]
    record_reliability("block stores damaged after the fact", len(damaged))
    out_dir = results / "aggregate/commuting"
    for attempt in (
        lambda: combine_blocks(pairs),
        lambda: aggregate(pairs, results),
    ):
        with pytest.raises(StoreError) as info:
            attempt()
        message = str(info.value)
        assert message.startswith("3 of 4 block stores cannot be used"), message
        for path in damaged:
            assert f"block store {path} " in message and f"rm -r {path}" in message
        assert str(pairs[2][0]) not in message
        advice = re.search(
            r"^delete them and rerun the pipeline \(make run\) to recompute them: (rm .+)$",
            message,
            re.MULTILINE,
        )
        assert advice, message
        assert shlex.split(advice.group(1)) == ["rm", *map(str, damaged)]
    assert not out_dir.exists() or not list(out_dir.iterdir())
    # Follow the advice: the rm, then what the rerun does (each missing block's job).
    subprocess.run(shlex.split(advice.group(1)), check=True)
    for path, block in pairs:
        if not path.exists():
            recompute_block(results, block)
    paths = aggregate(pairs, results)
    assert set(paths) == {*AGGREGATES, *(f"{name}_csv" for name in CSV_TABLES)}
    lost = sum(cells_differing(open_block(p, b.expected()).load(), clean[p.name]) for p, b in pairs)
    record_reliability("runs lost", lost)
    assert lost == 0
    for path, _ in pairs:
        assert not dataset_differences(open_block(path).load(), clean[path.name]), path


def test_block_checks_cost_little(pristine):
    path, block = block_pairs(pristine)[2]
    timings = {}
    for name, verify in (("checked", True), ("unchecked", False)):
        open_block(path, block.expected(), verify=verify)
        start = time.perf_counter()
        for _ in range(5):
            open_block(path, block.expected(), verify=verify)
        timings[name] = (time.perf_counter() - start) / 5
    print(
        f"per block store: checked open {timings['checked'] * 1e3:.1f} ms, "
        f"without the CRC-32 pass {timings['unchecked'] * 1e3:.1f} ms"
    )
    assert timings["checked"] < 1.0


# ---------------------------------------------------------------- statistics and aggregated stores


@pytest.fixture(scope="module")
def aggregated(pristine, tmp_path_factory) -> Path:
    """The pristine results/ with the dataset aggregated in-process, to copy and damage."""
    results = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("aggregated") / "results"))
    aggregate(block_pairs(results), results)
    return results


def _rewrite_store(path: Path, change) -> None:
    """The store rewritten whole and valid, checksums included, after ``change(ds)``."""
    ds = open_store(path, "any")
    change(ds)
    write_store(ds, path)


def _without_checksums(path: Path) -> None:
    """The store rewritten whole and valid, but without its integrity record (crc32c)."""
    ds = open_store(path, "any")
    encoded = store_module._encoded

    def plain(ds):
        ds, encoding = encoded(ds)
        for spec in encoding.values():
            spec["compressors"] = [c for c in spec["compressors"] if not isinstance(c, Crc32cCodec)]
        return ds, encoding

    with unittest.mock.patch.object(store_module, "_encoded", plain):
        write_store(ds, path)


def _flip_in_chunk_keeping_zip_crc(path: Path, variable: str) -> None:
    member = _members(path, f"{variable}/c/")[0]
    _rewrite_zip(
        path,
        lambda name, data: (
            data[:-5] + bytes([data[-5] ^ 1]) + data[-4:] if name == member else data
        ),
    )


# (path under results/, a chunked variable, another store that is valid but not this one)
STORES = {
    "statistics": ("datasets/commuting.zarr.zip", "s", "aggregate/commuting/bounds.zarr.zip"),
    "phase_times": (
        "aggregate/commuting/phase_times.zarr.zip",
        "t_measured",
        "aggregate/commuting/bounds.zarr.zip",
    ),
    "trajectories": (
        "aggregate/commuting/trajectories.zarr.zip",
        "u",
        "aggregate/commuting/path.zarr.zip",
    ),
}
# Each takes (the store, another store, the chunked variable) and damages the first.
STORE_DAMAGE = {
    "byte flipped in a chunk": lambda s, o, v: _flip_byte(s, _members(s, f"{v}/c/")[0]),
    "chunk edited, Zip CRC-32 recomputed": lambda s, o, v: _flip_in_chunk_keeping_zip_crc(s, v),
    "byte flipped in the metadata": lambda s, o, v: _flip_byte(s, "zarr.json"),
    "truncated by one byte": lambda s, o, v: s.write_bytes(s.read_bytes()[:-1]),
    "emptied": lambda s, o, v: s.write_bytes(b""),
    "chunk member removed": lambda s, o, v: _drop_member(s, _members(s, f"{v}/c/")[0]),
    "array metadata member removed": lambda s, o, v: _drop_member(s, f"{v}/zarr.json"),
    "checksums removed (no crc32c codec)": lambda s, o, v: _without_checksums(s),
    "another kind of store copied onto it": lambda s, o, v: shutil.copy(o, s),
    "another dataset's store copied onto it": lambda s, o, v: _rewrite_store(
        s, lambda ds: ds.attrs.update(dataset="digits")
    ),
    "made from other statistics": lambda s, o, v: _rewrite_store(
        s, lambda ds: ds.attrs.update(stats_hash="0" * 16)
    ),
}


def _readers(results: Path, store: str) -> dict[str, Callable[[], Any]]:
    """Everything that reads the store, each as a call that must refuse it."""

    def cli(*args: str) -> None:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = lindyn_main([*args, "--results", str(results)])
        if status != 0:
            raise StoreError(err.getvalue())

    readers = {
        "report": lambda: report.build_report(results, ["commuting"], config=CONFIG),
        "figure": lambda: report.make_figure(
            "fig5_theorem3", results, CONFIG["datasets"], [results / "f.png"]
        ),
    }
    if store == "statistics":
        readers |= {
            "read_stats": lambda: read_stats(results / STORES[store][0], "commuting"),
            "aggregation": lambda: aggregate(block_pairs(results), results),
            "lindyn query eps": lambda: cli("query", "eps"),
            "lindyn query phase": lambda: cli("query", "phase"),
        }
    elif store == "phase_times":
        readers["lindyn query phase"] = lambda: cli("query", "phase")
    return readers


@pytest.mark.parametrize(
    ("store", "damage"),
    [
        (store, damage)
        for store in STORES
        for damage in STORE_DAMAGE
        # a statistics store is what the others' statistics hash refers to
        if not (store == "statistics" and damage == "made from other statistics")
    ],
)
def test_damaged_or_misplaced_store_is_refused_by_every_reader(aggregated, tmp_path, store, damage):
    """Statistics and aggregated stores: verified on read, identity checked, cure named."""
    results = Path(shutil.copytree(aggregated, tmp_path / "results"))
    rel, variable, other = STORES[store]
    path = results / rel
    STORE_DAMAGE[damage](path, results / other, variable)
    record_reliability("stores damaged or misplaced after the fact")
    for reader, read in _readers(results, store).items():
        try:
            read()
        except StoreError as err:
            message = str(err)
        else:
            record_reliability("results silently wrong")
            pytest.fail(f"{store}, {damage}: {reader} read it")
        assert str(path) in message and "make run" in message, (reader, message)
        assert "rm -r" in message, (reader, message)


def test_aggregated_tables_unchanged_by_refused_damage(aggregated, tmp_path):
    """The one break the issue measured: a flipped byte changed `lindyn query phase`."""
    results = Path(shutil.copytree(aggregated, tmp_path / "results"))
    before = query.query_table(results, "phase")
    _flip_in_chunk_keeping_zip_crc(results / STORES["phase_times"][0], "t_measured")
    with pytest.raises(StoreError, match="checksum"):
        query.query_table(results, "phase")
    aggregate(block_pairs(results), results)  # the cure: recompute it
    pd.testing.assert_frame_equal(query.query_table(results, "phase"), before)


def test_misplaced_block_is_named_by_query_runs(results):
    """One block's store copied onto another's path: `lindyn query runs` says so."""
    pairs = block_pairs(results)
    shutil.copy(pairs[0][0], pairs[1][0])
    record_reliability("stores damaged or misplaced after the fact")
    runs = query.stale_runs(results, CONFIG)
    bad = runs[runs["path"].str.endswith(pairs[1][0].name)]
    assert list(bad["status"]) == ["unusable"] and bad["stale"].all()
    (why,) = bad["why"]
    assert "holds" in why and f"rm -r {pairs[1][0]}" in why, why
    good = runs[~runs["path"].str.endswith(pairs[1][0].name)]
    assert (good["status"] != "unusable").all() and len(good) == N_CELLS - BLOCKS[1].cells


def _write_concurrently(path: Path, value: float, rounds: int) -> None:
    ds = xr.Dataset({f"v{i}": ("x", np.full(50, value)) for i in range(40)}, attrs={"kind": "test"})
    for _ in range(rounds):
        write_store(ds, path)


def test_concurrent_writers_of_one_store_never_leave_it_incomplete(tmp_path):
    """Two writers of one store at once, a reader between: every read is whole."""
    path = tmp_path / "table.zarr.zip"
    writers = [
        multiprocessing.get_context("spawn").Process(
            target=_write_concurrently, args=(path, value, 8)
        )
        for value in (1.0, 2.0)
    ]
    for writer in writers:
        writer.start()
    reads = 0
    while any(w.is_alive() for w in writers) or reads == 0:
        if path.exists():
            ds = open_store(path, "test", kind="test")
            assert len(ds.data_vars) == 40
            values = {float(ds[v][0]) for v in ds.data_vars}
            assert len(values) == 1 and (ds.to_array() == values.pop()).all()
            reads += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    record_reliability("concurrent writers of one store", 2)
    assert reads and not list(tmp_path.glob("*.tmp-*"))
    open_store(path, "test", kind="test")


def test_disk_full_while_writing_a_csv_table_leaves_no_truncated_file(results, monkeypatch):
    aggregate(block_pairs(results), results)
    table = results / "aggregate/commuting/phase_times.csv"
    before = table.read_bytes()
    real = pd.DataFrame.to_csv

    def disk_full(frame, path, **kwargs):
        real(frame.head(3), path, **kwargs)  # a part of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match="No space"):
        aggregate(block_pairs(results), results)
    record_reliability("disk full while writing a table")
    assert table.read_bytes() == before
    assert not list(table.parent.glob("*.tmp-*"))


# ---------------------------------------------------------------- temporaries

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from lindyn.store import _to_directory, _zip_store, open_block, write_atomically

ds = open_block(sys.argv[1]).load()
moment = sys.argv[3]

def write(tmp):
    if moment == "zip complete, not renamed":
        _zip_store(ds, tmp)
    else:  # "Zarr directory written, not zipped"
        _to_directory(ds, tmp.with_name(tmp.name + ".dir"))
    os.kill(os.getpid(), signal.SIGKILL)

write_atomically(sys.argv[2], write)
"""


@pytest.mark.parametrize(
    "moment", ["zip complete, not renamed", "Zarr directory written, not zipped"]
)
def test_killed_writer_leaves_only_an_unread_tmp_which_the_next_write_removes(
    pristine, tmp_path, moment
):
    source, block = block_pairs(pristine)[2]
    final = tmp_path / source.name
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(source), str(final), moment])
    assert proc.wait(timeout=300) == -signal.SIGKILL
    record_reliability("writers killed mid-write")
    assert not final.exists()
    (tmp,) = tmp_path.glob(f"{final.name}.tmp-*")
    host, pid, _ = tmp.name.split(".tmp-")[1].removesuffix(".dir").split("~")
    assert (host, int(pid)) == (socket.gethostname(), proc.pid)  # unique per writer
    if tmp.is_file():  # its content is even complete, yet it is never read:
        with zipfile.ZipFile(tmp) as archive:
            assert archive.testzip() is None
    with pytest.raises(StoreError, match="temporary"):
        open_block(tmp)
    with pytest.raises(StoreError, match="temporary"):
        combine_blocks([(tmp, block)])
    write_block(open_block(source).load(), final)
    assert not list(tmp_path.glob("*.tmp-*"))
    open_block(final, block.expected()).load()


def test_temporaries_of_live_writers_are_never_removed(pristine, tmp_path):
    source, block = block_pairs(pristine)[2]
    ds = open_block(source).load()
    final = tmp_path / source.name
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        live = stale_name(final, sleeper.pid)
        live.write_bytes(b"the first bytes of a zip being written")
        live_dir = stale_name(final, os.getpid(), suffix=".dir")  # this very process
        live_dir.mkdir()
        elsewhere = stale_name(final, dead_pid(), host="another-host")  # cannot tell: kept
        elsewhere.write_bytes(b"")
        dead = stale_name(final, dead_pid())
        dead.write_bytes(b"")
        sibling = stale_name(tmp_path / "other.zarr.zip", dead_pid())  # another store's
        sibling.write_bytes(b"")
        write_block(ds, final)
        assert live.exists() and live_dir.exists() and elsewhere.exists() and sibling.exists()
        assert not dead.exists()
        record_reliability("live writers' temporaries kept", 2)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Once its writer is gone, the next write of the same store removes it.
    write_block(ds, final)
    assert not live.exists() and live_dir.exists()
    open_block(final, block.expected()).load()


# ---------------------------------------------------------------- the clean run


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """The reliability grid (with diverging cells), run once without interference."""
    workdir = make_workdir(tmp_path_factory.mktemp("reliability_clean"), CONFIG)
    run_snakemake(workdir, *TARGETS)
    return workdir


@pytest.mark.slow
def test_clean_run_stores_are_complete_and_verified(clean_run):
    # Parallel jobs (--cores 2) wrote sibling block stores into the same directory.
    for block in BLOCKS:
        ds = open_block(clean_run / block_path(block), block.expected()).load()
        assert ds["status"].size == block.cells == 2
    read_stats(clean_run / "results/datasets/commuting.zarr.zip")
    for rel in TARGETS:
        open_store(clean_run / rel, "aggregated")
    assert not temporaries(clean_run)


@pytest.mark.slow
def test_divergence_is_stored_counted_and_excluded(clean_run):
    """η = 50 diverges: stored with its stop step, counted, kept out of the statistics.

    The other cell of each block is bitwise the run `lindyn.sweep` gives without η = 50.
    """
    stats = read_stats(clean_run / "results/datasets/commuting.zarr.zip")
    diverged = 0
    for block in BLOCKS:
        ds = open_block(clean_run / block_path(block), block.expected()).load()
        bad = ds.sel(eta=50.0)
        assert (bad["status"] == "diverged").all()
        assert ((bad["stop_step"] >= 1) & (bad["stop_step"] < SETTINGS["max_steps"])).all()
        assert np.isfinite(bad["loss"].isel(step=0)).all()
        assert bad["loss"].isel(step=-1).isnull().all()
        diverged += int(bad["status"].size)
        good = ds.sel(eta=[0.2])
        assert (good["status"] == "converged").all()
        alone = simulate_block(stats, Block(**{**vars(block), "eta": (0.2,)}))
        for name in good.data_vars:
            assert _bitwise(good[name], alone[name]), (block.name, name)
    agg = clean_run / "results/aggregate/commuting"
    phase = open_store(agg / "phase_times.zarr.zip", "aggregated")
    assert json.loads(phase.attrs["status_counts"]) == {"converged": 4, "diverged": 4}
    assert phase.attrs["n_runs"] == 8
    bad = phase["status"] == "diverged"
    assert int(bad.sum()) > 0
    for name in ("t_measured", "rel_error_flow", "in_bracket", "bracket_position"):
        assert phase[name].where(bad).isnull().all(), name
    assert phase["t_measured"].where(~bad).notnull().any()
    bounds = open_store(agg / "bounds.zarr.zip", "aggregated")
    assert bounds["max_violation"].where(bounds["status"] == "diverged").isnull().all()
    path = open_store(agg / "path.zarr.zip", "aggregated")
    assert path["min_rel_dist_seq"].where(path["status"] == "diverged").isnull().all()
    # The trajectory itself is kept, with its status and stop step.
    traj = open_store(agg / "trajectories.zarr.zip", "aggregated")
    sel = dict(depth=2, width=3, ratio=1.0, init="aligned", seed=0, eta=50.0, delta=2.0)
    assert str(traj["status"].sel(**sel).values) == "diverged"
    assert np.isfinite(traj["loss"].sel(**sel).isel(step=0).values)
    record_reliability("diverging runs stored and handled", diverged)


# ---------------------------------------------------------------- interruption


def _blocks_present(workdir: Path) -> int:
    return sum((workdir / block_path(b)).exists() for b in BLOCKS)


def _kill_point_reached(workdir: Path, point: str, before: int, old: set[Path]) -> str | None:
    """What was caught if the workflow is at ``point`` now, else None.

    ``before``: blocks stored, ``old``: temporaries present, when this run started.
    """
    results = workdir / "results"
    if point == "dataset statistics":
        if (results / "logs/datasets/commuting.log").exists():
            return "the statistics job running"
    elif point == "block jobs started":
        if list((results / "logs/blocks/commuting").glob("*.log")):
            return f"block jobs running, {_blocks_present(workdir)} blocks stored"
    elif point == "a block half-written":
        if set((results / "blocks/commuting").glob("*.tmp-*")) - old:
            return "a block store being written"
    elif point == "more blocks stored":
        if _blocks_present(workdir) >= min(before + 1, len(BLOCKS)):
            return f"{_blocks_present(workdir)} of {len(BLOCKS)} blocks stored"
    elif point == "aggregation writing":
        if set((results / "aggregate").glob("*/*.tmp-*")) - old:
            return "an aggregated store being written"
    return None


def _wait_and_kill(proc: subprocess.Popen, workdir: Path, point: str) -> str:
    """Wait for the kill point, SIGKILL the whole process group; say what was caught."""
    start = time.monotonic()
    before, old = _blocks_present(workdir), set(temporaries(workdir))
    caught = None
    while proc.poll() is None and time.monotonic() < start + 300:
        caught = _kill_point_reached(workdir, point, before, old)
        if caught:
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
    return caught or "finished first"


def _incomplete(workdir: Path) -> list[str]:
    markers = workdir / ".snakemake/incomplete"
    if not markers.exists():
        return []
    return sorted(base64.b64decode(p.name).decode() for p in markers.iterdir() if p.is_file())


def _check_after_kill(workdir: Path, clean: Path) -> None:
    """What a kill leaves: complete final stores, and temporaries nobody reads."""
    # A store at its final path is complete, even when Snakemake marks it incomplete.
    for rel in final_stores(workdir):
        open_final(workdir / rel)
    stale = temporaries(workdir)
    print(f"  temporaries left by the kill: {[p.name for p in stale]}")
    absent = [b for b in BLOCKS if not (workdir / block_path(b)).exists()]
    if absent:  # as if killed between finishing a block store and renaming it into place
        final = workdir / block_path(absent[0])
        fake = stale_name(final, dead_pid())
        fake.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clean / block_path(absent[0]), fake)
        stale.append(fake)
        record_reliability("stale *.tmp-* stores injected")
    by_name = {b.name: b for b in BLOCKS}
    for path in stale:
        name = path.name.split(".tmp-")[0]
        if path.parent.parent.name == "blocks":
            block = by_name[name.removesuffix(".zarr.zip")]
            for read in (open_block, lambda p, b=block: combine_blocks([(p, b)])):
                with pytest.raises(StoreError, match="temporary"):
                    read(path)
        elif path.parent.name == "datasets":
            with pytest.raises(StoreError, match="temporary"):
                read_stats(path)
        else:
            with pytest.raises(StoreError, match="temporary"):
                open_store(path, "aggregated")


# The README's recovery, `make run`: `lindyn run` (here without the HTML report).
LINDYN_RUN = [sys.executable, "-m", "lindyn", "run", "--cores", "2", "--no-report", "--"]


def _make_run(workdir: Path) -> None:
    """`make run`: remove the lock a killed run left, then rerun what is incomplete."""
    subprocess.run([*LINDYN_RUN, *TARGETS], cwd=workdir, check=True, capture_output=True)


@pytest.mark.slow
def test_killed_workflow_resumes_with_nothing_lost(clean_run, tmp_path):
    """SIGKILL at five moments in a row, each time resuming; then compare with a clean run.

    Each resumed run is itself killed at the next moment, so resuming is shown to be
    interruptible too. Recovery is the README's (`make run`, i.e. `lindyn run`):
    Snakemake's lock survives a kill and is removed as stale, then `--rerun-incomplete`
    (Snakemake marks the outputs of the jobs it was running as incomplete, even a store
    already renamed into place).
    """
    workdir = make_workdir(tmp_path, CONFIG)
    points = [
        "dataset statistics",
        "block jobs started",
        "a block half-written",
        "more blocks stored",
        "aggregation writing",
    ]
    for point in points:
        proc = subprocess.Popen(  # after the first kill, it removes the lock left behind
            [*LINDYN_RUN, *TARGETS],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, jobs included
        )
        caught = _wait_and_kill(proc, workdir, point)
        record_reliability("workflow kills (SIGKILL)")
        print(f"killed at {point!r}: {caught}; marked incomplete: {_incomplete(workdir)}")
        _check_after_kill(workdir, clean_run)

    _make_run(workdir)
    assert not temporaries(workdir), "a stale temporary was left behind"
    problems, lost = compare_with_clean(workdir, clean_run)
    record_reliability("runs lost", lost)
    record_reliability("runs compared with a clean run", N_CELLS)
    assert lost == 0
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_damage_found_by_the_workflow_and_cured_by_its_advice(clean_run, tmp_path):
    workdir = tmp_path / "wd"
    shutil.copytree(clean_run, workdir, symlinks=True)
    damaged = [workdir / block_path(BLOCKS[1]), workdir / block_path(BLOCKS[2])]
    DAMAGE["byte flipped in a chunk"](damaged[0], None)
    DAMAGE["another block's store"](damaged[1], workdir / block_path(BLOCKS[0]))
    record_reliability("block stores damaged after the fact", 2)
    # Targets before --forcerun, which would take them as rules to force (nargs="*").
    proc = run_snakemake(workdir, *TARGETS, "--forcerun", "aggregate", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "2 of 4 block stores cannot be used" in out, out[-3000:]
    advice = re.search(
        r"^delete them and rerun the pipeline \(make run\) to recompute them: (rm .+)$",
        out,
        re.MULTILINE,
    )
    assert advice, out[-3000:]
    command = shlex.split(advice.group(1))
    assert command[1:] == [str(p.relative_to(workdir)) for p in damaged]
    subprocess.run(command, cwd=workdir, check=True)  # follow the advice
    _make_run(workdir)
    assert not temporaries(workdir)
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
    # Writing the statistics store (xarray) imports dask, which tokenizes its own
    # operators by pickling them on import: not the data file. Import it first.
    import dask.array  # noqa: F401

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


def test_npy_file_with_a_zip_inside_fails_in_one_line(tmp_path, no_unpickling):
    """Found by Hypothesis: an .npy whose data holds a zip passes `zipfile.is_zipfile`."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("X.npy", b"x")
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(inner.getvalue(), dtype=np.uint8))
    path = tmp_path / "data.npz"
    path.write_bytes(buffer.getvalue())
    record_reliability("bad data files tried")
    status, message = _run_dataset_cli(path, tmp_path / "out.zarr")
    _assert_clean_failure(status, message, path)


def test_npz_member_with_a_damaged_header_fails_in_one_line(tmp_path, no_unpickling):
    """Found by Hypothesis: numpy parses a .npy header as a Python literal."""
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((30, 4)), Y=np.zeros((30, 2)))
    path = tmp_path / "data.npz"
    path.write_bytes(buffer.getvalue().replace(b"'<f8', 'fortran", b"'<f8'# 'fortran", 1))
    record_reliability("bad data files tried")
    status, message = _run_dataset_cli(path, tmp_path / "out.zarr")
    _assert_clean_failure(status, message, path)
