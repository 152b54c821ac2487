"""lindyn: gradient-descent dynamics of deep linear networks, exactly and fast.

The top-level names are imported lazily so that a simulation job pays only for
what it uses (numpy for the kernel; xarray and zarr only when storing).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": "lindyn.datasets",
    "dataset_stats": "lindyn.stats",
    "Stats": "lindyn.stats",
    "simulate": "lindyn.sweeps",
    "sweep": "lindyn.sweeps",
    "open_results": "lindyn.query",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lindyn' has no attribute {name!r}")
