"""lindyn's stores: Zarr format 3, written by xarray, atomically, with checksums.

Three kinds of store:

* a **statistics store** (``results/datasets/{dataset}.zarr``): Σx, Σxy, their
  decompositions, ``s``, ``lam``, ``rho``, ``eps_a1``, ``eps_iso``; its content
  hash is recorded and checked on read;
* a **block store** (``results/blocks/{dataset}/{block}.zarr.zip``): the runs of
  one block of grid cells (the Dataset :func:`lindyn.sweep` returns) in a single
  Zip file, zarr's :class:`~zarr.storage.ZipStore` layout, so a block of
  hundreds of runs is one file;
* **aggregated stores** (``results/aggregate/{dataset}/*.zarr``).

Every array is written with zarr's ``crc32c`` codec, so a changed chunk is
refused when read; in a block store every member (metadata included) is also
covered by the Zip format's CRC-32, checked by :func:`open_block`.

Writes go to a temporary sibling named after the host and process, which is
renamed into place: a store at its final path is always complete, and a killed
writer leaves only a ``*.tmp-*`` sibling that no reader accepts and that the next
writer on the same host removes once its process is gone.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn.provenance import provenance
from lindyn.stats import Stats

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
    "write_block",
    "write_stats",
    "write_store",
]

BLOCK_REQUIRED = ("u", "loss", "crossing_step", "status", "stop_step")
BLOCK_ATTRS = ("dataset", "settings", "stats_hash", "code_hash")


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


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(
        f"{path.name}.tmp-{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
    )
    try:
        write(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
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


def write_store(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to a Zarr 3 directory store at ``path`` atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        Numpy- or Dask-backed; Dask chunks become Zarr chunks.
    path : path-like
        Final location; an existing store there is replaced.
    """
    return _atomic(path, lambda tmp: _to_directory(ds, tmp))


def _check_final(path: Path, what: str) -> None:
    if ".tmp-" in path.name:
        raise StoreError(
            f"{path} is the temporary file of an unfinished or interrupted write, not a "
            f"{what} store; it is never read"
        )
    if not path.exists():
        raise StoreError(f"{what} store {path} does not exist")


def _text_as_object(ds: xr.Dataset) -> xr.Dataset:
    """Zarr 3 reads text as numpy's variable-width strings; lindyn works with ``object``."""
    for name, var in ds.variables.items():
        if var.dtype.kind == "T":
            ds[name] = var.astype(object)
    return ds


def open_store(path: str | os.PathLike, what: str = "aggregated", lazy: bool = False) -> xr.Dataset:
    """Open a Zarr directory store written by :func:`write_store`.

    Parameters
    ----------
    path : path-like
    what : str
        The kind of store, for messages.
    lazy : bool
        Back the variables with Dask arrays instead of loading them (which
        verifies every chunk's checksum).

    Raises
    ------
    StoreError
        If the store is missing or damaged, naming it and how to recompute it.
    """
    import xarray as xr

    path = Path(path)
    _check_final(path, what)
    try:
        with warnings.catch_warnings():
            # Snakemake leaves a timestamp file in directory outputs.
            warnings.filterwarnings("ignore", "Object at .snakemake_timestamp")
            ds = xr.open_zarr(path, consolidated=True, chunks={} if lazy else None)
            return _text_as_object(ds if lazy else ds.load())
    except Exception as err:  # zarr and the crc32c codec raise many kinds for damaged stores
        raise StoreError(f"{what} store {path} is damaged ({err}); {recompute_hint(path)}") from err


# ---------------------------------------------------------------- blocks


def _zip_directory(ds: xr.Dataset, path: Path) -> None:
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


def _absent_members(store: Any, members: set[str]) -> list[str]:
    """Members a block's metadata calls for that its Zip file (``members``) lacks.

    zarr reads an absent chunk as fill values (NaN, "", 0) without complaint, and
    :func:`write_block` stores every chunk, so an absent one means damage.
    """
    import zarr

    absent = []
    for name, array in zarr.open_group(store, mode="r").arrays():
        chunks = itertools.product(*(range(n) for n in array.cdata_shape))
        keys = ["zarr.json"] + [array.metadata.encode_chunk_key(index) for index in chunks]
        absent += [f"{name}/{key}" for key in keys if f"{name}/{key}" not in members]
    return absent


def write_block(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a block of runs (a :func:`lindyn.sweep` Dataset) as one Zip store, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
    path : path-like
        Final location, by convention ``*.zarr.zip``.
    """
    return _atomic(path, lambda tmp: _zip_directory(ds, tmp))


def open_block(
    path: str | os.PathLike,
    expected: Mapping[str, Any] | None = None,
    verify: bool = True,
) -> xr.Dataset:
    """Open a block store lazily (Dask arrays), checking that it is the right, whole block.

    Parameters
    ----------
    path : path-like
    expected : mapping, optional
        What the block must hold: attribute values (``dataset``, ``settings``,
        ``stats_hash``), scalar coordinates (``init``, ``width``) and the values
        of its grid axes (``depth``, ``eta``, ``delta``, ``seed``).
    verify : bool
        Check every member's CRC-32 first (reads the file once).

    Raises
    ------
    StoreError
        If the block is missing, damaged, incomplete or not the expected one;
        the message names the store and how to recompute it.
    """
    import xarray as xr
    from zarr.storage import ZipStore

    path = Path(path)
    _check_final(path, "block")
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            bad = archive.testzip() if verify else None
        if bad is not None:
            raise StoreError(f"member {bad} fails its CRC-32 check")
        store = ZipStore(path, mode="r")  # stays open: the Dataset reads from it lazily
        ds = _text_as_object(xr.open_zarr(store, consolidated=True, chunks={}))
        absent = _absent_members(store, members)
        if absent:
            raise StoreError(f"members missing: {', '.join(absent)}")
    except (StoreError, OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise StoreError(f"block store {path} is damaged ({err}); {recompute_hint(path)}") from err
    missing = [v for v in BLOCK_REQUIRED if v not in ds] + [
        a for a in BLOCK_ATTRS if a not in ds.attrs
    ]
    if missing:
        raise StoreError(f"block store {path} lacks {', '.join(missing)}; {recompute_hint(path)}")
    for key, want in (expected or {}).items():
        if key in ds.dims:
            have = ds[key].values.tolist()
        elif key in ds.coords:
            have = ds[key].values.item()
        else:
            have = ds.attrs.get(key)
        if have != want:
            raise StoreError(
                f"block store {path} holds {key}={have!r} where the configuration asks for "
                f"{want!r}; {recompute_hint(path)}"
            )
    return ds


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
        "kind": "lindyn.stats",
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


def read_stats(path: str | os.PathLike) -> Stats:
    """Load a statistics store, checking its content against its recorded hash.

    Raises
    ------
    StoreError
        If the store is missing, damaged, or its content no longer matches its hash.
    """
    path = Path(path)
    ds = open_store(path, "statistics")
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
