"""The pipeline's configuration: its schema, its defaults, its checks, the grid of cells.

The schema (``lindyn/config.schema.yaml``; ``workflow/schemas/config.schema.yaml``
links to it) is the one home of every configuration default: Snakemake's
``validate`` fills them in, and the command line and the library read them from
it (:func:`default`). It checks types, ranges and unknown keys;
:func:`describe_schema_error` turns its verdict into one line naming the key, the
value and what is allowed. :func:`check_config` adds what a schema cannot say:
numbers must be finite (YAML's ``.nan`` passes any range check), loaders must be
loaders of :data:`lindyn.datasets.LOADERS` and their options options of that
loader with valid values, and files a dataset points to must exist.
:func:`validated` does both and returns the configuration the pipeline runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATASET_PATTERN",
    "SCHEMA_PATH",
    "ConfigError",
    "allowed",
    "check_config",
    "config_error_message",
    "default",
    "describe",
    "describe_schema_error",
    "format_value",
    "grid_cells",
    "load_config",
    "ratios",
    "schema",
    "schema_problems",
    "validated",
    "widths",
]

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

# Keys whose values are integers (the schema's "integer" also admits 2.0).
_INTEGER_KEYS = ("width", "max_steps", "log_density", "max_components")
_INTEGER_LISTS = ("depth", "seed")


class ConfigError(ValueError):
    """A configuration value is not allowed."""


@functools.cache
def _schema() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema() -> dict[str, Any]:
    """The configuration's JSON schema (a copy).

    Returns
    -------
    dict
    """
    return copy.deepcopy(_schema())


def _property(key: str) -> Mapping[str, Any]:
    node: Mapping[str, Any] = _schema()
    for part in key.split("."):
        node = node["properties"][part]
    return node


def default(key: str) -> Any:
    """The schema's default of a configuration key.

    Parameters
    ----------
    key : str
        Dotted, e.g. ``"tol"`` or ``"aggregate.workers"``.

    Returns
    -------
    object
        A copy of the default.

    Raises
    ------
    KeyError
        If the schema has no such key or gives it no default.

    Examples
    --------
    >>> default("max_components"), default("blocks.eta")
    (32, 4)
    """
    return copy.deepcopy(_property(key)["default"])


def allowed(key: str) -> tuple[Any, ...]:
    """The values the schema allows for an enumerated key (or each item of a list key).

    Examples
    --------
    >>> allowed("stop"), allowed("grid.init")
    (('converged', 'crossings'), ('aligned', 'random'))
    """
    node = _property(key)
    return tuple(node["items"]["enum"] if node.get("type") == "array" else node["enum"])


def _dataset_pattern() -> str:
    pattern = _schema()["properties"]["datasets"]["propertyNames"]["pattern"]
    return pattern.removeprefix("^").removesuffix("$")


# What a dataset's name may be (the schema's ``propertyNames``), unanchored: the
# workflow's ``dataset`` wildcard constraint.
DATASET_PATTERN = _dataset_pattern()


def describe(key: str) -> dict[str, Any]:
    """The schema of one configuration key (a copy): type, bounds, default, description.

    Examples
    --------
    >>> describe("tol")["type"]
    'number'
    """
    return copy.deepcopy(dict(_property(key)))


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


# ---------------------------------------------------------------- schema errors


def _key_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_BOUNDS = (
    ("exclusiveMinimum", ">"),
    ("minimum", ">="),
    ("exclusiveMaximum", "<"),
    ("maximum", "<="),
)


def _allowed(schema: Any) -> str:
    """A short description of the values a (sub)schema allows."""
    if not isinstance(schema, Mapping):
        return "anything" if schema is True else "nothing"
    if "$ref" in schema:
        schema = _resolve(schema)
    if "oneOf" in schema:
        return " or ".join(_allowed(branch) for branch in schema["oneOf"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        size = schema.get("minItems", 0)
        text = (
            ("a non-empty list" if size == 1 else f"a list of >= {size} items")
            if size
            else "a list"
        )
        if schema.get("uniqueItems"):
            text += " of distinct values"
        return f"{text}, each {_allowed(items)}" if items else text
    if kind == "object":
        props = schema.get("properties", {})
        if props:
            required = schema.get("required", [])
            text = "a mapping with keys " + ", ".join(props)
            return text + (f" (required: {', '.join(required)})" if required else "")
        if "propertyNames" in schema:
            return "a mapping of names (letters, digits, underscores) to entries"
        return "a mapping"
    text = _TYPE_NAMES.get(kind, "a value") if isinstance(kind, str) else "a value"
    bounds = [f"{op} {schema[key]}" for key, op in _BOUNDS if key in schema]
    if bounds:
        text += " " + " and ".join(bounds)
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A subschema with its local ``$ref`` (``#/definitions/NAME``) resolved."""
    name = schema["$ref"].removeprefix("#/definitions/")
    return {**_schema()["definitions"][name], **{k: v for k, v in schema.items() if k != "$ref"}}


def _branch_error(error: Any) -> Any:
    """The error of a ``oneOf`` branch whose type the value has (None if it has none)."""
    from jsonschema import Draft202012Validator

    for sub in error.context or ():
        branch = error.validator_value[sub.relative_schema_path[0]]
        if Draft202012Validator(branch).is_type(error.instance, branch.get("type", "object")):
            return sub
    return None


def _reason(error: Any) -> str:
    check, limit = error.validator, error.validator_value
    if check == "type":
        return f"must be {_TYPE_NAMES.get(limit, limit)}"
    for key, op in _BOUNDS:
        if check == key:
            return f"must be {op} {limit}"
    if check == "enum":
        return "must be one of " + ", ".join(map(str, limit))
    if check == "minItems":
        return f"must have at least {limit} item(s)"
    if check == "maxItems":
        return f"must have at most {limit} item(s)"
    if check == "uniqueItems":
        return "values must be distinct"
    if check == "pattern":
        return f"must match {limit}"
    if check == "minProperties":
        return f"must have at least {limit} entr{'y' if limit == 1 else 'ies'}"
    return error.message


def describe_schema_error(error: Any) -> str:
    """One line for a :class:`jsonschema.ValidationError` on the configuration.

    Parameters
    ----------
    error : jsonschema.exceptions.ValidationError

    Returns
    -------
    str
        ``config key 'KEY': VALUE is not allowed (REASON); allowed: ALLOWED``,
        or, for unknown and missing keys, what the mapping allows.
    """
    if error.validator == "oneOf":
        branch = _branch_error(error)
        if branch is not None:  # e.g. a width of 0: say what is wrong with it as an integer
            return describe_schema_error(branch)
        return (
            f"config key {_key_path(list(error.absolute_path))!r}: {_show(error.instance)} is "
            f"not allowed; allowed: {_allowed(error.schema)}"
        )
    path = list(error.absolute_path)
    check = error.validator
    if check == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {})
        unknown = [k for k in error.instance if k not in known] or ["?"]
        keys = ", ".join(repr(_key_path([*path, k])) for k in unknown)
        return (
            f"config key(s) {keys}: unknown key; allowed keys"
            f"{' in ' + repr(_key_path(path)) if path else ''}: {', '.join(known)}"
        )
    if check == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message) or [
            str(error.validator_value)
        ]
        allowed = error.schema.get("properties", {}).get(missing[0], {})
        return (
            f"config key {_key_path([*path, missing[0]])!r} is missing; it is required "
            f"(allowed: {_allowed(allowed)})"
        )
    if "propertyNames" in error.schema_path:
        return (
            f"config key {_key_path([*path, error.instance])!r}: the name {error.instance!r} is "
            f"not allowed ({_reason(error)}); allowed: names of letters, digits and underscores "
            "starting with a letter"
        )
    where = _key_path(path)
    return (
        f"config key {where!r}: {_show(error.instance)} is not allowed ({_reason(error)}); "
        f"allowed: {_allowed(error.schema)}"
    )


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every schema violation of ``config``, one line each (see `describe_schema_error`).

    Parameters
    ----------
    config : mapping
    schema : mapping
        The loaded JSON schema.

    Returns
    -------
    list of str
        Sorted by key; empty if the configuration satisfies the schema.
    """
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(schema).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    return [describe_schema_error(e) for e in errors]


def config_error_message(
    error: BaseException, config: Mapping[str, Any] | None = None, limit: int = 10
) -> str:
    """What to tell the user about a refused configuration, without a traceback.

    Parameters
    ----------
    error : BaseException
        A :class:`ConfigError`, a :class:`jsonschema.ValidationError`, or the
        error Snakemake's ``validate`` raises (whose context is the validation error).
    config : mapping, optional
        The configuration: given, every schema violation is listed, not only the first.
    limit : int
        At most this many violations are listed.

    Returns
    -------
    str
    """
    from jsonschema import ValidationError

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ValidationError | ConfigError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ValidationError):
        lines = [describe_schema_error(cause)]
        if config is not None:
            lines = schema_problems(config, _schema()) or lines
    else:
        lines = [str(cause if cause is not None else error)]
    extra = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "invalid configuration:\n  " + "\n  ".join(lines[:limit]) + extra


# ---------------------------------------------------------------- beyond the schema


def _walk(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    yield key, value
    if isinstance(value, Mapping):
        for sub, item in value.items():
            if not isinstance(sub, str):
                raise ConfigError(
                    f"config key {key or '(top level)'!r}: key {sub!r} is not allowed "
                    "(keys must be strings; quote it in YAML)"
                )
            yield from _walk(item, f"{key}.{sub}" if key else sub)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{key}[{i}]")


def _normalise_integers(config: MutableMapping[str, Any]) -> None:
    """Turn integral floats (YAML ``2.0``, which the schema admits) into ints."""

    def fix(value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() else value

    for key in _INTEGER_KEYS:
        if key in config:
            config[key] = (
                [fix(v) for v in config[key]] if isinstance(config[key], list) else fix(config[key])
            )
    grid = config.get("grid")
    if isinstance(grid, MutableMapping):
        for axis in _INTEGER_LISTS:
            if isinstance(grid.get(axis), list):
                grid[axis] = [fix(v) for v in grid[axis]]
    aggregate = config.get("aggregate")
    if isinstance(aggregate, MutableMapping) and "workers" in aggregate:
        aggregate["workers"] = fix(aggregate["workers"])
    for entry in (config.get("datasets") or {}).values():
        if isinstance(entry, MutableMapping) and "width" in entry:
            width = entry["width"]
            entry["width"] = [fix(v) for v in width] if isinstance(width, list) else fix(width)


def _option_key(name: str, message: str) -> str:
    found = re.search(r"option '([^']+)'", message)
    return f"datasets.{name}.options" + (f".{found.group(1)}" if found else "")


def check_config(config: Mapping[str, Any]) -> None:
    """Check what the schema cannot: finiteness, loaders and their options, files,
    distinct floats.

    Parameters
    ----------
    config : mapping
        A configuration the schema accepts; it is not modified.

    Raises
    ------
    ConfigError
        Naming the key, the value and what is allowed.
    """
    from lindyn.datasets import LOADERS, DatasetError, loader_options, resolve_options

    for key, value in _walk(config, ""):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"config key {key!r}: {value!r} is not allowed; allowed: finite numbers"
            )
    for name, entry in config["datasets"].items():
        if entry["loader"] not in LOADERS:
            raise ConfigError(
                f"config key 'datasets.{name}.loader': {entry['loader']!r} is not allowed; "
                f"allowed: one of {', '.join(LOADERS)}"
            )
    numbers = {f"grid.{axis}": config["grid"].get(axis, []) for axis in ("eta", "delta", "ratio")}
    numbers |= {
        f"datasets.{name}.ratio": entry["ratio"]
        for name, entry in config["datasets"].items()
        if "ratio" in entry
    }
    for key, values in numbers.items():
        spelled = [format_value(float(v)) for v in values]
        if len(set(spelled)) != len(spelled):
            twice = sorted({v for v in spelled if spelled.count(v) > 1})
            raise ConfigError(
                f"config key {key!r}: values {spelled} are not allowed "
                f"({', '.join(twice)} given more than once); allowed: distinct numbers"
            )
        if key.endswith("ratio") and 1 not in values:
            raise ConfigError(
                f"config key {key!r}: {values} is not allowed (it lacks 1, the balanced init "
                "the paper's claims are measured on); allowed: distinct numbers > 0 and "
                "<= 1000000, one of them 1"
            )
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
        except (DatasetError, TypeError, ValueError) as err:
            raise ConfigError(f"config key {_option_key(name, str(err))!r}: {err}") from None


def validated(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration the pipeline runs: checked, with every default filled in.

    Snakemake's ``validate`` checks ``config`` against the schema and fills in its
    defaults; :func:`check_config` checks the rest; integral floats at integer
    keys (YAML ``width: 3.0``, which the schema admits) become ints.

    Parameters
    ----------
    config : mapping
        As read from ``config.yaml``; it is not modified.

    Returns
    -------
    dict
        A new configuration.

    Raises
    ------
    ConfigError
        Listing every schema violation (key, value, what is allowed), or the first
        problem :func:`check_config` finds.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    checked = copy.deepcopy(dict(config))
    try:
        validate(checked, str(SCHEMA_PATH))
        check_config(checked)
    except (WorkflowError, ConfigError) as err:
        raise ConfigError(config_error_message(err, config)) from None
    _normalise_integers(checked)
    return checked


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``config.yaml`` and return it :func:`validated`.

    Raises
    ------
    ConfigError
        Naming the file, the key, the value and what is allowed.
    """
    import yaml

    try:
        return validated(yaml.safe_load(Path(path).read_text()) or {})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def widths(config: Mapping[str, Any], dataset: str) -> list[int]:
    """A dataset's hidden widths: its own ``width``, else the top-level one, as a list.

    The report's claims are measured at the smallest (:mod:`lindyn.report.loading`).
    """
    width = config["datasets"][dataset].get("width", config["width"])
    return [int(v) for v in (width if isinstance(width, list) else [width])]


def ratios(config: Mapping[str, Any], dataset: str) -> list[float]:
    """A dataset's per-layer scale ratios (:mod:`lindyn.init`): its own, else ``grid.ratio``."""
    return [float(v) for v in config["datasets"][dataset].get("ratio", config["grid"]["ratio"])]


def grid_cells(config: Mapping[str, Any], dataset: str) -> list[dict[str, str]]:
    """The grid cells of one dataset, as path-ready strings.

    The aligned initialisation is deterministic, so it gets one cell (seed 0)
    whatever the seed list; the random one gets a cell per seed.
    """
    grid = config["grid"]
    seeds = grid["seed"]
    cells = []
    for depth, width, ratio, init in itertools.product(
        grid["depth"], widths(config, dataset), ratios(config, dataset), grid["init"]
    ):
        for seed in [0] if init == "aligned" else seeds:
            for eta, delta in itertools.product(grid["eta"], grid["delta"]):
                cells.append(
                    {
                        "dataset": dataset,
                        "depth": str(depth),
                        "width": str(width),
                        "ratio": format_value(ratio),
                        "init": init,
                        "seed": str(seed),
                        "eta": format_value(float(eta)),
                        "delta": format_value(float(delta)),
                    }
                )
    return cells
