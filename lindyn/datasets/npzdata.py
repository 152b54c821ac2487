"""Datasets stored as ``.npz`` archives: downsampled ImageNet 32×32, and plain X/Y.

``imagenet32`` reads the official batches (``train_data_batch_N.npz``,
``val_data.npz``): ``data`` (N×3072 bytes, CIFAR's channel-major layout) and
``labels`` (class ids 1..1000). ``path`` is a file, a directory (its ``*.npz``
batches except ``val_data.npz``: name that file explicitly to use the
validation split) or a comma-separated list. ``classes=K`` keeps only the
images of classes 1..K (one-hot then has K columns; the filter applies with
``target="input"`` too); ``classes=none`` keeps all 1000. Pixels are divided by 255.

``npz`` reads a plain archive with arrays ``X`` (n×d, numeric) and ``Y``:
either n×p numeric targets (regression) or a 1-d integer array of n class
labels, one-hot encoded with one column per distinct label in increasing
order (recorded as ``class_values``). Values are used as stored (no division).

Both open archives with ``allow_pickle=False``; shapes, types and finiteness
(the count and first position of NaN and infinite entries) are checked and
every failure names the file and the array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.files import existing_file, gather, load_arrays
from lindyn.datasets.floatrange import check_finite
from lindyn.datasets.options import TARGET, Option, common_options, integer, path, paths

__all__ = ["IMAGENET32_OPTIONS", "NPZ_OPTIONS", "read_imagenet32", "read_npz"]

PIXELS = 3072
ALL_CLASSES = 1000

IMAGENET32_OPTIONS: dict[str, Option] = {
    "path": Option(None, paths, "batch file(s) or directory of *.npz", required=True),
    "classes": Option(10, integer(1, optional=True), "keep classes 1..K (none: all 1000)"),
    "target": TARGET,
    **common_options(),
}

NPZ_OPTIONS: dict[str, Option] = {
    "path": Option(None, path, ".npz file with arrays X and Y", required=True),
    "test_path": Option(
        None, path, ".npz file of a test set, arrays X and Y as in `path` (none: no file)"
    ),
    **common_options(),
}


def _integers(array: np.ndarray) -> bool:
    return array.dtype.kind in "iu"


def _imagenet32_batch(file: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and 0-based labels of classes ``< classes`` from one batch."""
    arrays = load_arrays(file, ("data", "labels"))
    data, labels = arrays["data"], arrays["labels"]
    if data.ndim != 2 or data.shape[1] != PIXELS or not _integers(data):
        raise DatasetError(
            f"{file}: array 'data' must be integer pixels of shape (N, {PIXELS}) "
            f"(32×32×3), got {data.dtype} {data.shape}"
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise DatasetError(f"{file}: array 'data' has values outside 0..255")
    if labels.shape != (data.shape[0],) or not _integers(labels):
        raise DatasetError(
            f"{file}: array 'labels' must be {data.shape[0]} integers, "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 1 or labels.max() > ALL_CLASSES):
        raise DatasetError(f"{file}: array 'labels' must hold class ids 1..{ALL_CLASSES}")
    keep = labels <= classes
    return data[keep].astype(np.uint8), labels[keep].astype(np.int64) - 1


def read_imagenet32(opts: Mapping[str, Any]) -> Raw:
    """Downsampled ImageNet 32×32 batches, restricted to the first classes.

    Parameters
    ----------
    opts : mapping
        Resolved options of ``IMAGENET32_OPTIONS``.

    Returns
    -------
    Raw
        With the number of classes kept in ``extra``.
    """
    classes = opts["classes"] or ALL_CLASSES
    if classes > ALL_CLASSES:
        raise DatasetError(f"option 'classes': must be <= {ALL_CLASSES}, got {classes}")
    files = gather("path", opts["path"], suffix=".npz", held_out="val_data.npz")
    parts = [_imagenet32_batch(file, classes) for file in files]
    X = np.concatenate([data for data, _ in parts])
    if X.shape[0] == 0:
        raise DatasetError(f"option 'path': no image of classes 1..{classes} in {opts['path']}")
    onehot = opts["target"] == "onehot"
    return Raw(
        X=X,
        labels=np.concatenate([labels for _, labels in parts]) if onehot else None,
        classes=classes,
        pixel_max=255.0,
        source=[str(file) for file in files],
        extra={"classes": classes},
    )


def read_npz(opts: Mapping[str, Any]) -> Raw:
    """A plain ``.npz`` archive with inputs ``X`` and targets or labels ``Y``.

    Parameters
    ----------
    opts : mapping
        Resolved options of ``NPZ_OPTIONS``.

    Returns
    -------
    Raw
        With ``class_values`` in ``extra`` when ``Y`` holds labels, and the test
        set of ``test_path``, if given, as its ``test`` (labels indexed by the
        training file's class values).
    """
    raw = _npz_file("path", opts["path"])
    if opts["test_path"] is None:
        return raw
    test = _npz_file("test_path", opts["test_path"])
    if (raw.labels is None) != (test.labels is None):
        raise DatasetError(
            f"{opts['test_path']}: array 'Y' must hold labels if and only if {opts['path']}'s does"
        )
    if raw.labels is not None:
        values = np.asarray(raw.extra["class_values"])
        test_values = np.asarray(test.extra["class_values"])
        unseen = np.setdiff1d(test_values, values)
        if unseen.size:
            raise DatasetError(
                f"{opts['test_path']}: labels {unseen.tolist()} do not occur in {opts['path']}"
            )
        labels = np.searchsorted(values, test_values)[test.labels]
        test = replace(test, labels=labels, classes=raw.classes, extra={})
    return replace(raw, test=test)


def _npz_file(option: str, name: str) -> Raw:
    """One ``.npz`` archive's ``X`` and ``Y`` as a :class:`Raw`."""
    file = existing_file(option, name)
    arrays = load_arrays(file, ("X", "Y"))
    X, Y = arrays["X"], arrays["Y"]
    if X.ndim != 2 or X.dtype.kind not in "biuf" or 0 in X.shape:
        raise DatasetError(
            f"{file}: array 'X' must be a non-empty 2-d numeric (n, d) array, "
            f"got {X.dtype} {X.shape}"
        )
    labels = Y.ndim == 1 and _integers(Y)
    if not (labels or (Y.ndim == 2 and Y.dtype.kind in "biuf")):
        raise DatasetError(
            f"{file}: array 'Y' must be 2-d numeric (n, p) targets or 1-d integer labels, "
            f"got {Y.dtype} {Y.shape}"
        )
    if Y.shape[0] != X.shape[0]:
        raise DatasetError(f"{file}: arrays 'X' and 'Y' have {X.shape[0]} and {Y.shape[0]} rows")
    for name, array in (("X", X), ("Y", Y)):
        check_finite(f"{file}: array {name!r}", array)  # every row, even unselected ones
    if labels:
        values, index = np.unique(Y, return_inverse=True)
        return Raw(
            X=X,
            labels=index,
            classes=values.size,
            source=[str(file)],
            extra={"class_values": values.tolist()},
        )
    if Y.shape[1] == 0:
        raise DatasetError(f"{file}: array 'Y' has no column")
    return Raw(X=X, Y=Y, source=[str(file)])
