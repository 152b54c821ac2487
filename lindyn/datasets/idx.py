"""MNIST in its official IDX format (``train-images-idx3-ubyte[.gz]`` and labels).

An IDX file is a big-endian header (magic ``0x00000803`` for an unsigned-byte
3-d array, ``0x00000801`` for a 1-d one, then one 32-bit size per dimension)
followed by the bytes of the array. Files may be gzip-compressed (detected by
content, not name). The magic, the dimensions and the file size are all
checked; images become rows of ``rows·cols`` pixels divided by 255.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.files import existing_file, read_bytes
from lindyn.datasets.options import TARGET, Option, common_options, path

__all__ = ["IDX_OPTIONS", "default_labels", "read_idx", "read_mnist_idx"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

IDX_OPTIONS: dict[str, Option] = {
    "path": Option(None, path, "images file (idx3-ubyte, optionally .gz)", required=True),
    "labels": Option(None, path, "labels file (idx1-ubyte; none: derived from path)"),
    "target": TARGET,
    **common_options(),
}

_LABEL_NAMES = (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX array, checking magic, dimensions and size.

    Parameters
    ----------
    path : Path
        The file (plain or gzip).
    magic : int
        Expected magic number (its low byte is the number of dimensions).

    Returns
    -------
    ndarray of uint8
        Shaped as the header says.

    Raises
    ------
    DatasetError
        Naming the file, for a wrong magic number or a size that does not
        match the header (e.g. a truncated file).
    """
    content = read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(content[:4], "big")
    if len(content) >= 4 and found != magic:
        raise DatasetError(
            f"{path}: wrong magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"(IDX unsigned-byte array of {ndim} dimension(s))"
        )
    if len(content) < header:
        raise DatasetError(
            f"{path}: truncated, {len(content)} bytes, shorter than the {header}-byte IDX header"
        )
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(content) != expected:
        state = "truncated" if len(content) < expected else "too long"
        raise DatasetError(
            f"{path}: {state}, the header gives dimensions {dims}, so {expected} bytes "
            f"were expected, found {len(content)}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def default_labels(images: str) -> str | None:
    """The labels file that goes with an images file, by the official naming.

    Parameters
    ----------
    images : str
        Path of the images file.

    Returns
    -------
    str or None
        ``images`` with ``images-idx3`` replaced by ``labels-idx1`` (or the
        dotted variant), None if the name follows neither pattern.
    """
    file = Path(images)
    for old, new in _LABEL_NAMES:
        if old in file.name:
            return str(file.with_name(file.name.replace(old, new)))
    return None


def read_mnist_idx(opts: Mapping[str, Any]) -> Raw:
    """MNIST images (and labels) from official IDX files.

    Parameters
    ----------
    opts : mapping
        Resolved options of ``IDX_OPTIONS``.

    Returns
    -------
    Raw
        With the labels file used (or None) in ``extra``.
    """
    images_file = existing_file("path", opts["path"])
    images = read_idx(images_file, IMAGES_MAGIC)
    X = images.reshape(images.shape[0], -1)
    if opts["target"] == "input":
        return Raw(X=X, pixel_max=255.0, source=[str(images_file)], extra={"labels": None})
    labels_path = opts["labels"] or default_labels(opts["path"])
    if labels_path is None:
        raise DatasetError(
            f"option 'labels': cannot derive the labels file from {opts['path']} (no "
            "'images-idx3' in its name): give labels=FILE, or target=input"
        )
    labels_file = existing_file("labels", labels_path)
    labels = read_idx(labels_file, LABELS_MAGIC)
    if labels.size != X.shape[0]:
        raise DatasetError(
            f"{labels_file}: {labels.size} labels for the {X.shape[0]} images of {images_file}"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_file}: labels must be digits 0..9, found {labels.max()}")
    return Raw(
        X=X,
        labels=labels,
        classes=10,
        pixel_max=255.0,
        source=[str(images_file), str(labels_file)],
        extra={"labels": labels_path},
    )
