"""Minimal Zarr I/O in xarray's layout, without importing xarray or Dask.

A simulation job writes one small store and exits; importing xarray (and, through
it, pandas and Dask) would cost it about a second of start-up, more than many
runs take. These functions write and read the layout xarray itself uses for
Zarr v2 (``_ARRAY_DIMENSIONS`` attributes, consolidated metadata), so the stores
open with :func:`xarray.open_zarr` like any other.

Integrity: :func:`write_group` records a SHA-256 of the store's content (every
array's name, dtype, shape, bytes and attributes, and the store's attributes)
in the attribute :data:`CHECKSUM_ATTR`, computed from the values in memory before
they are written. :func:`verify_group` re-reads the store and compares, and
checks that the consolidated metadata (``.zmetadata``, what xarray reads) agrees
with the per-array metadata files. Zarr reads a deleted chunk as its fill value
without complaint; the checksum is what notices.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKSUM_ATTR",
    "IntegrityError",
    "Variables",
    "content_checksum",
    "read_group",
    "read_verified",
    "verify_group",
    "write_group",
]

# name -> (dims, values, attrs)
Variables = Mapping[str, tuple[tuple[str, ...], Any, Mapping[str, Any]]]

CHECKSUM_ATTR = "content_sha256"
_METADATA_FILES = (".zgroup", ".zattrs", ".zarray")


class IntegrityError(ValueError):
    """A store's content or metadata does not match what was written."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _canonical(value: Any) -> bytes:
    """JSON with sorted keys: the same bytes for a value and its JSON round trip."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_json_safe
    ).encode()


def _update_array(digest: Any, name: str, values: Any, attrs: Mapping[str, Any]) -> None:
    values = np.asarray(values)
    digest.update(b"\0array\0" + name.encode() + b"\0")
    digest.update(_canonical(dict(attrs)))
    digest.update(_canonical(list(values.shape)))
    if values.dtype.kind in "OUST":
        digest.update(b"str" + _canonical([str(v) for v in values.ravel()]))
    else:
        little = values.dtype.newbyteorder("<") if values.dtype.byteorder == ">" else values.dtype
        digest.update(little.str.encode())
        digest.update(np.ascontiguousarray(values, dtype=little).tobytes())


def _finish(digest: Any, attrs: Mapping[str, Any]) -> str:
    digest.update(b"\0attrs\0")
    digest.update(_canonical({k: v for k, v in attrs.items() if k != CHECKSUM_ATTR}))
    return digest.hexdigest()


def content_checksum(variables: Variables, attrs: Mapping[str, Any]) -> str:
    """SHA-256 of a store's content as :func:`write_group` writes it.

    Parameters
    ----------
    variables : mapping
        ``name -> (dims, values, attrs)``.
    attrs : mapping
        Store attributes (:data:`CHECKSUM_ATTR` itself is ignored).

    Returns
    -------
    str
        Hex digest.
    """
    digest = hashlib.sha256()
    for name in sorted(variables):
        dims, values, var_attrs = variables[name]
        values = np.asarray(values)
        if values.dtype.kind == "U":
            values = values.astype(object)
        written = {
            "_ARRAY_DIMENSIONS": list(dims),
            **{k: _json_safe(v) for k, v in var_attrs.items()},
        }
        _update_array(digest, name, values, written)
    return _finish(digest, {k: _json_safe(v) for k, v in attrs.items()})


def _dump(path: Path, value: Any) -> dict[str, Any]:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=_json_safe))
    return json.loads(path.read_text())


def write_group(path: str | os.PathLike, variables: Variables, attrs: Mapping[str, Any]) -> None:
    """Write variables (coordinates included) and attributes to a new Zarr v2 store.

    Numeric arrays are written directly in the Zarr v2 layout, one uncompressed
    chunk each (a run store holds a few dozen kilobytes): importing and driving
    the zarr library would cost a simulation job more than most runs take.
    Text arrays, if any, are written with zarr. The store's attributes also get
    :data:`CHECKSUM_ATTR`, the :func:`content_checksum` of what is written, and
    the consolidated metadata (``.zmetadata``) that xarray reads.

    Parameters
    ----------
    path : path-like
        A directory that must not exist yet.
    variables : mapping
        ``name -> (dims, values, attrs)``; a coordinate is a variable named
        after its single dimension.
    attrs : mapping
        Store attributes (JSON-serialisable).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=False)
    checksum = content_checksum(variables, attrs)
    metadata = {
        ".zgroup": _dump(path / ".zgroup", {"zarr_format": 2}),
        ".zattrs": _dump(path / ".zattrs", {**attrs, CHECKSUM_ATTR: checksum}),
    }
    text = {}
    for name, (dims, values, var_attrs) in variables.items():
        values = np.asarray(values)
        array_attrs = {"_ARRAY_DIMENSIONS": list(dims), **var_attrs}
        if values.dtype.kind in "OUS":
            text[name] = (values.astype(object), array_attrs)
            continue
        if values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("<"))
        (path / name).mkdir()
        header = {
            "chunks": [max(1, n) for n in values.shape],
            "compressor": None,
            "dimension_separator": ".",
            "dtype": values.dtype.str,
            "fill_value": None,
            "filters": None,
            "order": "C",
            "shape": list(values.shape),
            "zarr_format": 2,
        }
        metadata[f"{name}/.zarray"] = _dump(path / name / ".zarray", header)
        metadata[f"{name}/.zattrs"] = _dump(path / name / ".zattrs", array_attrs)
        if values.size:
            key = ".".join("0" * values.ndim) or "0"
            (path / name / key).write_bytes(np.ascontiguousarray(values).tobytes())
    if text:
        import zarr

        group = zarr.open_group(store=str(path), mode="r+", zarr_format=2)
        for name, (values, array_attrs) in text.items():
            array = group.create_array(
                name,
                shape=values.shape,
                dtype=str,
                chunks=tuple(max(1, n) for n in values.shape),
                fill_value=None,
            )
            if values.size:
                array[...] = values
            array.attrs.update(array_attrs)
            for key in (".zarray", ".zattrs"):
                metadata[f"{name}/{key}"] = json.loads((path / name / key).read_text())
    _dump(path / ".zmetadata", {"metadata": metadata, "zarr_consolidated_format": 1})


def read_group(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every array of a Zarr store into memory, with the store's attributes.

    The store is verified on the way (see :func:`read_verified`).

    Returns
    -------
    arrays : dict of ndarray
    attrs : dict
    """
    arrays, _, attrs = read_verified(path)
    return arrays, attrs


def _check_consolidated(path: Path) -> dict[str, Any]:
    """The consolidated metadata, which must list exactly the metadata files, with their content."""
    consolidated = path / ".zmetadata"
    try:
        listed = json.loads(consolidated.read_text())["metadata"]
    except FileNotFoundError:
        raise IntegrityError(f"{consolidated.name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise IntegrityError(f"{consolidated.name} cannot be read ({err})") from None
    if not isinstance(listed, dict):
        raise IntegrityError(f"{consolidated.name} has no metadata mapping")
    on_disk = {
        (Path(root) / name).relative_to(path).as_posix()
        for root, _, files in os.walk(path)
        for name in files
        if name in _METADATA_FILES
    }
    for key in sorted(set(listed) | on_disk):
        if key not in on_disk:
            raise IntegrityError(f"{key} is missing (listed in .zmetadata)")
        if key not in listed:
            raise IntegrityError(f"{key} is not listed in .zmetadata")
        try:
            content = json.loads((path / key).read_text())
        except (OSError, ValueError) as err:
            raise IntegrityError(f"{key} cannot be read ({err})") from None
        if _canonical(content) != _canonical(listed[key]):
            raise IntegrityError(f"{key} differs from its copy in .zmetadata (edited?)")
    return listed


def _read_single_chunk(path: Path, name: str, meta: Mapping[str, Any]) -> np.ndarray | None:
    """An array stored as one chunk (as `write_group` writes it), decoded without zarr.

    Zarr's own reader costs ~1 ms per array in its async machinery; a run store
    has about twenty arrays. Returns None for layouts this does not handle.
    """
    import numcodecs

    shape = tuple(meta["shape"])
    dtype = np.dtype(meta["dtype"])
    if (
        meta.get("filters")
        or dtype.kind in "OUSV"
        or list(meta["chunks"]) != [max(1, n) for n in shape]
    ):
        return None
    if 0 in shape:
        return np.empty(shape, dtype)
    key = meta.get("dimension_separator", ".").join("0" * len(shape)) or "0"
    chunk = path / name / key
    try:
        raw = chunk.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"chunk {name}/{key} is missing") from None
    try:
        codec = numcodecs.get_codec(meta["compressor"]) if meta.get("compressor") else None
        data = codec.decode(raw) if codec is not None else raw
        values = np.frombuffer(data, dtype=dtype)
    except Exception as err:  # codecs raise many kinds for damaged chunks
        raise IntegrityError(f"chunk {name}/{key} cannot be decoded ({err})") from None
    if values.size != math.prod(shape):
        raise IntegrityError(
            f"chunk {name}/{key} holds {values.size} values, not {math.prod(shape)}"
        )
    return values.reshape(shape, order=meta.get("order", "C"))


def read_verified(
    path: str | os.PathLike,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, Any]]:
    """Read a store written by :func:`write_group`, checking its recorded checksum.

    Reads what xarray reads (the consolidated metadata, which must agree with the
    per-array metadata files, and every chunk) and recomputes
    :func:`content_checksum`. About a millisecond for a run store, without Zarr's
    asynchronous machinery for the single-chunk arrays that ``write_group`` writes.

    Parameters
    ----------
    path : path-like
        The store.

    Returns
    -------
    arrays : dict of ndarray
    array_attrs : dict of dict
        Each array's attributes (``_ARRAY_DIMENSIONS`` among them).
    attrs : dict
        The store's attributes; ``CHECKSUM_ATTR`` is absent if none was recorded
        (a store written by xarray), and then only the metadata was checked.

    Raises
    ------
    IntegrityError
        Naming what is missing, unreadable or different.
    """
    path = Path(path)
    listed = _check_consolidated(path)
    attrs = listed.get(".zattrs", {})
    attrs = attrs if isinstance(attrs, dict) else {}
    suffix = "/.zarray"
    group = None
    digest = hashlib.sha256()
    arrays: dict[str, np.ndarray] = {}
    array_attrs: dict[str, dict[str, Any]] = {}
    for name in sorted(key[: -len(suffix)] for key in listed if key.endswith(suffix)):
        try:
            values = _read_single_chunk(path, name, listed[name + suffix])
            if values is None:  # another layout: let zarr read it
                if group is None:
                    import zarr

                    group = zarr.open_group(store=str(path), mode="r", use_consolidated=True)
                values = np.asarray(group[name][...])
        except IntegrityError:
            raise
        except Exception as err:  # zarr raises many kinds for damaged stores
            raise IntegrityError(f"array {name!r} cannot be read ({err})") from None
        arrays[name] = values
        array_attrs[name] = listed.get(f"{name}/.zattrs", {})
        _update_array(digest, name, values, array_attrs[name])
    recorded = attrs.get(CHECKSUM_ATTR)
    if recorded is not None and _finish(digest, attrs) != recorded:
        raise IntegrityError(
            "content differs from the checksum recorded when it was written "
            "(a chunk replaced or altered, or attributes edited)"
        )
    return arrays, array_attrs, attrs


def verify_group(path: str | os.PathLike) -> bool:
    """Check a store against its recorded checksum (see :func:`read_verified`).

    Returns
    -------
    bool
        True if verified; False if the store records no checksum, after
        checking its metadata and chunks only.
    """
    return CHECKSUM_ATTR in read_verified(path)[2]
