"""lindyn's stores: Zarr format 3, written by xarray, one Zip file each, verified on read.

Three kinds of store, each a single ``*.zarr.zip`` file in the layout zarr's
:class:`~zarr.storage.ZipStore` reads (``xr.open_zarr(ZipStore(path))``):

* a **statistics store** (``results/datasets/{dataset}.zarr.zip``): Σx, Σxy, their
  decompositions, ``s``, ``lam``, ``rho``, ``eps_a1``, ``eps_iso``; its content
  hash is recorded and checked on read;
* a **block store** (``results/blocks/{dataset}/{block}.zarr.zip``): the runs of
  one block of grid cells (the Dataset :func:`lindyn.sweep` returns);
* **aggregated stores** (``results/aggregate/{dataset}/{table}.zarr.zip``).

Integrity: every array is written with zarr's ``crc32c`` codec and every chunk is
stored, and every member of the Zip file carries the Zip format's CRC-32.
:func:`open_store` refuses a store whose metadata fails its CRC-32, whose arrays
lack the ``crc32c`` codec (the integrity record), or which lacks a chunk; a chunk
whose bytes changed fails both checksums when read. Identity: every store records
its ``kind`` and what it is of (dataset, statistics hash, grid cells), which the
reader compares with what it expects at that path.

Writes go to a temporary sibling named after the host and process, which is
renamed into place: a store at its final path is always complete, concurrent
writers of one store each replace it whole, and a killed writer leaves only a
``*.tmp-*`` sibling that no reader accepts and that the next writer on the same
host removes once its process is gone.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn.provenance import provenance
from lindyn.stats import HeldOut, Stats

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "BLOCK_REQUIRED",
    "StoreError",
    "open_block",
    "open_store",
    "read_stats",
    "recompute_hint",
    "stats_dataset",
    "write_atomically",
    "write_block",
    "write_stats",
    "write_store",
]

BLOCK_REQUIRED = ("u", "loss", "crossing_step", "status", "stop_step")
BLOCK_ATTRS = ("dataset", "settings", "stats_hash", "code_hash")
BLOCK_KIND = "lindyn.sweep"
STATS_KIND = "lindyn.stats"


class StoreError(RuntimeError):
    """A store is missing, incomplete, damaged or not the one expected."""


def recompute_hint(path: str | os.PathLike) -> str:
    """How to recompute a store that cannot be used."""
    return f"delete it (rm -r {path}) and rerun the pipeline (make run) to recompute it"


# ---------------------------------------------------------------- atomic writes


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` left by dead writers on this host."""
    host = socket.gethostname()
    for stale in path.parent.glob(f"{path.name}.tmp-*"):
        parts = stale.name.rsplit(".tmp-", 1)[1].split("~")
        if len(parts) != 3 or parts[0] != host:
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(
                missing_ok=True
            )
        except (PermissionError, ValueError):
            continue


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place.

    Every file lindyn writes goes through here, so a file at its final path is
    always whole (a disk-full or killed writer leaves only its temporary).

    Parameters
    ----------
    path : path-like
        The final file.
    write : callable
        Writes the file's content to the path it is given (which does not end
        like ``path``: name the format explicitly where it is inferred from the
        suffix).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(
        f"{path.name}.tmp-{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
    )
    try:
        write(tmp)
        os.replace(tmp, path)  # one file: atomic, and the last of concurrent writers wins whole
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _encoded(ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """``ds`` ready for Zarr 3: text as variable-length strings, every array checksummed."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    ds = ds.copy()
    for name, var in ds.variables.items():
        var.encoding = {}
        if var.dtype.kind == "U":
            ds[name] = var.astype(object)
        elif var.dtype.kind == "O" and var.chunks is not None:
            ds[name] = var.load()  # zarr needs the text in memory to choose its type
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        encoding[name] = {"compressors": [ZstdCodec(level=3), Crc32cCodec()]}
        if var.chunks is None and var.ndim:  # numpy-backed: one chunk, one file
            encoding[name]["chunks"] = var.shape
    return ds, encoding


def _to_directory(ds: xr.Dataset, path: Path) -> None:
    ds, encoding = _encoded(ds)
    with warnings.catch_warnings():
        # Consolidated metadata (one read opens the store; what xarray looks for first) is
        # zarr-python's extension of format 3, and zarr says so on every write.
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        # Every chunk is stored, even one of fill values only (zarr skips those by
        # default): a missing chunk, which zarr would read as fill values, is then damage.
        ds.to_zarr(
            path,
            mode="w",
            zarr_format=3,
            consolidated=True,
            encoding=encoding,
            write_empty_chunks=True,
        )


def _zip_store(ds: xr.Dataset, path: Path) -> None:
    """The Zarr store of ``ds`` as one Zip file (the layout zarr's ZipStore reads)."""
    directory = path.with_name(path.name + ".dir")
    try:
        _to_directory(ds, directory)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            for member in sorted(directory.rglob("*")):
                if member.is_file():
                    archive.write(member, member.relative_to(directory).as_posix())
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def write_store(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as a Zarr 3 store in one Zip file at ``path``, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        Numpy- or Dask-backed; Dask chunks become Zarr chunks. Its ``kind``
        attribute says what it is (checked by :func:`open_store`).
    path : path-like
        Final location, by convention ``*.zarr.zip``; a store there is replaced
        (a rename of one file: a concurrent reader sees the old or the new store).
    """
    return write_atomically(path, lambda tmp: _zip_store(ds, tmp))


def _check_final(path: Path, what: str) -> None:
    if ".tmp-" in path.name:
        raise StoreError(
            f"{path} is the temporary file of an unfinished or interrupted write, not a "
            f"{what} store; it is never read"
        )
    if not path.is_file():
        raise StoreError(f"{what} store {path} does not exist")


def _text_as_object(ds: xr.Dataset) -> xr.Dataset:
    """Zarr 3 reads text as numpy's variable-width strings; lindyn works with ``object``."""
    for name, var in ds.variables.items():
        if var.dtype.kind == "T":
            ds[name] = var.astype(object)
    return ds


def _integrity_problems(store: Any, archive: zipfile.ZipFile) -> list[str]:
    """What makes a store's content unverifiable, or shows it incomplete.

    Every metadata member is read (the Zip format checks its CRC-32 on a full
    read, as it does for every chunk zarr reads later); every array must carry
    the ``crc32c`` codec (the store's integrity record) and every one of its
    chunks: zarr would read an absent chunk as fill values (NaN, "", 0) without
    complaint, and :func:`write_store` stores every chunk.
    """
    import zarr
    from zarr.codecs import Crc32cCodec

    members = set(archive.namelist())
    for member in sorted(members):
        if member.endswith("zarr.json"):
            archive.read(member)  # raises BadZipFile if its CRC-32 does not match
    problems = []
    for name, array in zarr.open_group(store, mode="r").arrays():
        if not any(isinstance(codec, Crc32cCodec) for codec in array.metadata.codecs):
            problems.append(f"array {name} carries no crc32c checksum")
        chunks = itertools.product(*(range(n) for n in array.cdata_shape))
        keys = ["zarr.json"] + [array.metadata.encode_chunk_key(index) for index in chunks]
        problems += [f"{name}/{key} is missing" for key in keys if f"{name}/{key}" not in members]
    return problems


def _held(ds: xr.Dataset, key: str) -> Any:
    """What ``ds`` records for ``key``: a grid axis's values, a scalar coordinate, or an attr."""
    if key in ds.dims:
        return ds[key].values.tolist()
    if key in ds.coords:
        return ds[key].values.item()
    return ds.attrs.get(key)


def open_store(
    path: str | os.PathLike,
    what: str,
    *,
    kind: str | None = None,
    required: Sequence[str] = (),
    expected: Mapping[str, Any] | None = None,
    lazy: bool = False,
    verify: bool = True,
) -> xr.Dataset:
    """Open a store written by :func:`write_store`, checking it is whole and the one expected.

    Parameters
    ----------
    path : path-like
    what : str
        The kind of store in words, for messages ("statistics", "block", ...).
    kind : str, optional
        The ``kind`` attribute the store must carry (e.g. ``"lindyn.stats"``).
    required : sequence of str
        Variables or attributes the store must hold.
    expected : mapping, optional
        The store's identity: attribute values (``dataset``, ``stats_hash``,
        ``settings``), scalar coordinates (``init``, ``width``) and the values
        of grid axes (``depth``, ``eta``, ``delta``, ``seed``) it must hold.
    lazy : bool
        Back the variables with Dask arrays instead of loading them now.
    verify : bool
        Check every member's CRC-32 now (one read of the file). Without it, a
        lazy store's chunks are verified only as they are read, and a damaged
        one then raises from the computation that reads it, without the store's
        name.

    Raises
    ------
    StoreError
        If the store is missing, damaged, incomplete, unverifiable or not the
        expected one; the message names it and how to recompute it.
    """
    import xarray as xr
    from zarr.storage import ZipStore

    path = Path(path)
    _check_final(path, what)
    hint = recompute_hint(path)
    try:
        store = ZipStore(path, mode="r")  # stays open: a lazy Dataset reads from it
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() if verify else None
            problems = [f"{bad} fails its CRC-32 check"] if bad else []
            problems += _integrity_problems(store, archive)
        if problems:
            raise StoreError("; ".join(problems))
        ds = xr.open_zarr(store, consolidated=True, chunks={} if lazy else None)
        ds = _text_as_object(ds if lazy else ds.load())
    except StoreError as err:
        raise StoreError(f"{what} store {path} cannot be trusted ({err}); {hint}") from err
    except Exception as err:  # zarr, zipfile and crc32c raise many kinds for damaged stores
        raise StoreError(f"{what} store {path} is damaged ({err}); {hint}") from err
    if kind is not None and ds.attrs.get("kind") != kind:
        raise StoreError(
            f"{path} is a {ds.attrs.get('kind')!r} store where a {what} store ({kind!r}) "
            f"belongs; {hint}"
        )
    missing = [key for key in required if key not in ds and key not in ds.attrs]
    if missing:
        raise StoreError(f"{what} store {path} lacks {', '.join(missing)}; {hint}")
    for key, want in (expected or {}).items():
        have = _held(ds, key)
        if have != want:
            raise StoreError(
                f"{what} store {path} holds {key}={have!r} where {want!r} belongs there; {hint}"
            )
    return ds


# ---------------------------------------------------------------- blocks


def write_block(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a block of runs (a :func:`lindyn.sweep` Dataset), atomically."""
    return write_store(ds, path)


def open_block(
    path: str | os.PathLike, expected: Mapping[str, Any] | None = None, verify: bool = True
) -> xr.Dataset:
    """Open a block store lazily (Dask arrays), checking that it is the right, whole block.

    Parameters
    ----------
    path : path-like
    expected : mapping, optional
        What the block must hold (see :meth:`lindyn.blocks.Block.expected`).
    verify : bool
        As for :func:`open_store`.

    Raises
    ------
    StoreError
        As :func:`open_store`.
    """
    return open_store(
        path,
        "block",
        kind=BLOCK_KIND,
        required=BLOCK_REQUIRED + BLOCK_ATTRS,
        expected=expected,
        lazy=True,
        verify=verify,
    )


# ---------------------------------------------------------------- statistics


def stats_dataset(stats: Stats) -> xr.Dataset:
    """The statistics store's content as an :class:`xarray.Dataset`."""
    import xarray as xr

    d, p, m = stats.d, stats.p, stats.m
    variables: dict[str, Any] = {
        "sigma_x": (("feature", "feature_"), stats.sigma_x, {"long_name": "Σx = XᵀX/n"}),
        "sigma_xy": (("feature", "target"), stats.sigma_xy, {"long_name": "Σxy = XᵀY/n"}),
        "mu": (("eig",), stats.mu, {"long_name": "eigenvalues of Σx (descending)"}),
        "Q": (("feature", "eig"), stats.Q, {"long_name": "eigenvectors of Σx"}),
        "U": (("feature", "u_basis"), stats.U, {"long_name": "left singular basis of Σxy"}),
        "V": (("target", "v_basis"), stats.V, {"long_name": "right singular basis of Σxy"}),
        "s": (("component",), stats.s, {"long_name": "singular values s_i of Σxy"}),
        "lam": (("component",), stats.lam, {"long_name": "λ_i = (UᵀΣxU)_ii"}),
        "rho": (("component",), stats.rho, {"long_name": "ρ_i = s_i/λ_i"}),
        "order_rrr": (
            ("component",),
            stats.order_rrr + 1,
            {"long_name": "components by decreasing s_i²/λ_i (1-based)"},
        ),
        "orders_agree": (
            ("component",),
            stats.orders_agree,
            {"long_name": "top-k by s_i and by s_i²/λ_i coincide (k = component)"},
        ),
        "rrr_coef": (("feature", "target"), stats.rrr_coef, {"long_name": "Σx⁺Σxy"}),
        "rrr_basis": (
            ("target", "rrr_index"),
            stats.rrr_basis,
            {"long_name": "eigenvectors of ΣxyᵀΣx⁺Σxy (descending)"},
        ),
        "rrr_gain": (
            ("rrr_index",),
            stats.rrr_gain,
            {"long_name": "eigenvalues of ΣxyᵀΣx⁺Σxy (descending)"},
        ),
        "yy": ((), stats.yy, {"long_name": "tr(YᵀY)/n"}),
        "eps_a1": ((), stats.eps_a1, {"long_name": "ε_A1 (Frobenius, not squared)"}),
        "eps_iso": ((), stats.eps_iso, {"long_name": "ε_iso (Frobenius, not squared)"}),
        "rank": ((), stats.rank, {"long_name": "numerical rank of Σxy"}),
    }
    if stats.sigma_xc is not None:
        variables["sigma_xc"] = (
            ("feature", "feature_"),
            stats.sigma_xc,
            {"long_name": "XᵀX_clean/n"},
        )
        variables["cc"] = ((), stats.cc, {"long_name": "tr(X_cleanᵀX_clean)/n"})
    if stats.held_out is not None:
        held = stats.held_out
        variables |= {
            "test_sigma_x": (("feature", "feature_"), held.sigma_x, {"long_name": "X′ᵀX′/n′"}),
            "test_sigma_xy": (("feature", "target"), held.sigma_xy, {"long_name": "X′ᵀY′/n′"}),
            "test_yy": ((), held.yy, {"long_name": "tr(Y′ᵀY′)/n′ of the test set"}),
            "test_n": ((), held.n, {"long_name": "rows n′ of the test set"}),
        }
    coords = {
        "component": np.arange(1, m + 1),
        "feature": np.arange(d),
        "feature_": np.arange(d),
        "target": np.arange(p),
        "eig": np.arange(1, d + 1),
        "u_basis": np.arange(1, d + 1),
        "v_basis": np.arange(1, p + 1),
        "rrr_index": np.arange(1, p + 1),
    }
    attrs = {
        "kind": STATS_KIND,
        "dataset": stats.meta.get("label") or stats.meta.get("name", ""),
        "dataset_meta": json.dumps(stats.meta, sort_keys=True, default=str),
        "data_hash": stats.meta.get("data_hash", ""),
        "stats_hash": stats.stats_hash,
        "center": str(stats.meta.get("center", "")),
        **provenance(),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def write_stats(stats: Stats, path: str | os.PathLike) -> Path:
    """Write a statistics store atomically."""
    return write_store(stats_dataset(stats), path)


def read_stats(path: str | os.PathLike, dataset: str | None = None) -> Stats:
    """Load a statistics store, checking its content against its recorded hash.

    Parameters
    ----------
    path : path-like
    dataset : str, optional
        The dataset the store must be of (its ``dataset`` attribute), e.g. the
        name its path gives it.

    Raises
    ------
    StoreError
        If the store is missing, damaged, of another dataset, or its content no
        longer matches its hash.
    """
    path = Path(path)
    ds = open_store(
        path,
        "statistics",
        kind=STATS_KIND,
        required=("dataset_meta", "stats_hash"),
        expected=None if dataset is None else {"dataset": dataset},
    )
    try:
        arrays = {name: ds[name].values for name in ds.data_vars}
        stats = Stats(
            sigma_x=arrays["sigma_x"],
            sigma_xy=arrays["sigma_xy"],
            yy=float(arrays["yy"]),
            mu=arrays["mu"],
            Q=arrays["Q"],
            U=arrays["U"],
            V=arrays["V"],
            s=arrays["s"],
            lam=arrays["lam"],
            rho=arrays["rho"],
            rank=int(arrays["rank"]),
            eps_a1=float(arrays["eps_a1"]),
            eps_iso=float(arrays["eps_iso"]),
            rrr_coef=arrays["rrr_coef"],
            rrr_basis=arrays["rrr_basis"],
            rrr_gain=arrays["rrr_gain"],
            sigma_xc=arrays.get("sigma_xc"),
            cc=float(arrays["cc"]) if "cc" in arrays else None,
            held_out=(
                HeldOut(
                    arrays["test_sigma_x"],
                    arrays["test_sigma_xy"],
                    float(arrays["test_yy"]),
                    int(arrays["test_n"]),
                )
                if "test_sigma_x" in arrays
                else None
            ),
            meta=json.loads(ds.attrs["dataset_meta"]),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise StoreError(
            f"statistics store {path} is incomplete ({err!r}); {recompute_hint(path)}"
        ) from err
    if stats.stats_hash != ds.attrs.get("stats_hash"):
        raise StoreError(
            f"statistics store {path} does not match its recorded hash; {recompute_hint(path)}"
        )
    return stats
