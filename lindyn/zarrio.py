"""Minimal Zarr I/O in xarray's layout, without importing xarray or Dask.

A simulation job writes one small store and exits; importing xarray (and, through
it, pandas and Dask) would cost it about a second of start-up, more than many
runs take. These two functions write and read the layout xarray itself uses for
Zarr v2 (``_ARRAY_DIMENSIONS`` attributes, consolidated metadata), so the stores
open with :func:`xarray.open_zarr` like any other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Variables", "read_group", "write_group"]

# name -> (dims, values, attrs)
Variables = Mapping[str, tuple[tuple[str, ...], Any, Mapping[str, Any]]]


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_group(path: str | os.PathLike, variables: Variables, attrs: Mapping[str, Any]) -> None:
    """Write variables (coordinates included) and attributes to a new Zarr v2 store.

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
    import zarr

    group = zarr.open_group(store=str(path), mode="w-", zarr_format=2)
    group.attrs.update({k: _json_safe(v) for k, v in attrs.items()})
    for name, (dims, values, var_attrs) in variables.items():
        values = np.asarray(values)
        if values.dtype.kind == "U":
            values = values.astype(object)
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=str if values.dtype == object else values.dtype,
            chunks=tuple(max(1, n) for n in values.shape),
            fill_value=None,
        )
        if values.size:
            array[...] = values
        array.attrs.update(
            {"_ARRAY_DIMENSIONS": list(dims), **{k: _json_safe(v) for k, v in var_attrs.items()}}
        )
    zarr.consolidate_metadata(str(path), zarr_format=2)


def read_group(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every array of a Zarr store into memory, with the store's attributes.

    Returns
    -------
    arrays : dict of ndarray
    attrs : dict
    """
    import zarr

    group = zarr.open_group(store=str(path), mode="r")
    arrays = {name: array[...] for name, array in group.arrays()}
    return {k: np.asarray(v) for k, v in arrays.items()}, dict(group.attrs)
