"""The pipeline's configuration: checks beyond the JSON schema, and the grid of cells.

The schema (``workflow/schemas/config.schema.yaml``, applied by Snakemake's
``validate``) checks types, ranges and unknown keys. This module adds what a
schema cannot say: numbers must be finite (YAML's ``.nan`` passes any range
check), loader options must be options of that loader with valid values, and
files a dataset points to must exist. Errors name the key, the value and what
is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ConfigError", "check_config", "format_value", "grid_cells"]


class ConfigError(ValueError):
    """A configuration value is not allowed."""


def format_value(value: Any) -> str:
    """How a config value is spelled in paths and on command lines.

    Floats use Python's shortest round-tripping repr (``0.05``, ``1.0``, ``1e-05``),
    so a path component parses back to exactly the configured number.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)


def _check_finite(value: Any, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{key}': {value!r} is not allowed, numbers must be finite")
    if isinstance(value, Mapping):
        for sub, item in value.items():
            _check_finite(item, f"{key}.{sub}" if key else str(sub))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{key}[{i}]")


def check_config(config: Mapping[str, Any]) -> None:
    """Check what the schema cannot: finiteness, loader options, files, distinct floats.

    Raises
    ------
    ConfigError
        Naming the key, the value and what is allowed.
    """
    from lindyn.datasets import DatasetError, loader_options, resolve_options

    _check_finite(config, "")
    for axis in ("eta", "delta"):
        spelled = [format_value(float(v)) for v in config["grid"][axis]]
        if len(set(spelled)) != len(spelled):
            raise ConfigError(f"config key 'grid.{axis}': values {spelled} are not distinct")
    for name, entry in config["datasets"].items():
        loader = entry["loader"]
        allowed = loader_options(loader)
        options = entry.get("options") or {}
        for key in options:
            if key not in allowed:
                raise ConfigError(
                    f"config key 'datasets.{name}.options.{key}': unknown option of loader "
                    f"{loader!r}; allowed: {', '.join(sorted(allowed))}"
                )
        try:
            resolve_options(loader, options)
        except DatasetError as err:
            raise ConfigError(f"config key 'datasets.{name}.options': {err}") from err


def grid_cells(config: Mapping[str, Any], dataset: str) -> list[dict[str, str]]:
    """The grid cells of one dataset, as path-ready strings.

    The aligned initialisation is deterministic, so it gets one cell (seed 0)
    whatever the seed list; the random one gets a cell per seed.
    """
    grid = config["grid"]
    width = config["datasets"][dataset].get("width", config["width"])
    seeds = grid.get("seed", [0])
    cells = []
    for depth in grid["depth"]:
        for init in grid["init"]:
            for seed in [0] if init == "aligned" else seeds:
                for eta in grid["eta"]:
                    for delta in grid["delta"]:
                        cells.append(
                            {
                                "dataset": dataset,
                                "depth": str(depth),
                                "width": str(width),
                                "init": init,
                                "seed": str(seed),
                                "eta": format_value(float(eta)),
                                "delta": format_value(float(delta)),
                            }
                        )
    return cells
