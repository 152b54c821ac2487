"""Loader options: declaration, conversion (also from ``KEY=VALUE`` strings) and checks.

Every option of a loader is an `Option`: a default and a converter. A
converter takes the option's name and a value, either already typed (Python
call) or a string (command line), and returns the typed value or raises
`DatasetError` naming the option. Defaults are stored already converted.

String forms: booleans ``true/false/yes/no/1/0``; integers ``500``; floats
``0.1``; float lists ``1,0.7,0.49`` (brackets allowed); ``none`` (or an empty
string) for an optional value; paths as given, several separated by commas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from os import PathLike
from typing import Any

import numpy as np

from lindyn.datasets.errors import DatasetError

__all__ = [
    "MAX_TEST_FRACTION",
    "TARGET",
    "Option",
    "boolean",
    "choice",
    "common_options",
    "integer",
    "parse_items",
    "path",
    "paths",
    "real",
    "real_list",
    "resolve",
]

Converter = Callable[[str, Any], Any]

# The largest test share: at least a tenth of the rows stays for training.
MAX_TEST_FRACTION = 0.9

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_NONE = frozenset({"none", "null", ""})


@dataclass(frozen=True)
class Option:
    """One loader option.

    Attributes
    ----------
    default : object
        The value used when the option is not given (already converted).
    convert : callable
        ``convert(name, value) -> value``; raises `DatasetError`.
    doc : str
        One line for help texts.
    required : bool
        The option has no default and must be given.
    """

    default: Any
    convert: Converter
    doc: str
    required: bool = False


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE)


def _bad(name: str, value: Any, expected: str) -> DatasetError:
    return DatasetError(f"option {name!r}: expected {expected}, got {value!r}")


def boolean(name: str, value: Any) -> bool:
    """Convert a boolean option (``true``/``false`` and the like from strings).

    Parameters
    ----------
    name : str
        The option's name, for the error message.
    value : bool or str
        The value.

    Returns
    -------
    bool
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
    raise _bad(name, value, "true or false")


def integer(minimum: int | None = None, *, optional: bool = False) -> Converter:
    """Make a converter for an integer option.

    Parameters
    ----------
    minimum : int, optional
        Smallest allowed value.
    optional : bool
        Accept None (or the string ``none``).

    Returns
    -------
    callable
        ``convert(name, value) -> int | None``.
    """

    def convert(name: str, value: Any) -> int | None:
        if optional and _is_none(value):
            return None
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _bad(name, value, "an integer") from None
        if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
            raise _bad(name, value, "an integer" + (" or none" if optional else ""))
        if minimum is not None and value < minimum:
            raise DatasetError(f"option {name!r}: must be >= {minimum}, got {value}")
        return int(value)

    return convert


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _bad(name, value, "a number") from None
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise _bad(name, value, "a number")
    if not math.isfinite(value):
        raise _bad(name, value, "a finite number")
    return float(value)


def real(minimum: float | None = None, maximum: float | None = None) -> Converter:
    """Make a converter for a finite float option.

    Parameters
    ----------
    minimum, maximum : float, optional
        Smallest and largest allowed values (inclusive).

    Returns
    -------
    callable
        ``convert(name, value) -> float``.
    """

    def convert(name: str, value: Any) -> float:
        number = _to_float(name, value)
        if minimum is not None and number < minimum:
            raise DatasetError(f"option {name!r}: must be >= {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise DatasetError(f"option {name!r}: must be <= {maximum}, got {number}")
        return number

    return convert


def real_list(name: str, value: Any) -> list[float] | None:
    """Convert an optional list of floats (``"1,0.7,0.49"`` from a string).

    Parameters
    ----------
    name : str
        The option's name, for the error message.
    value : None, str, or sequence of numbers
        The value; None (or ``none``) keeps the loader's default rule.

    Returns
    -------
    list of float or None
    """
    if _is_none(value):
        return None
    if isinstance(value, str):
        items: Iterable[Any] = value.strip().strip("[]()").split(",")
    elif isinstance(value, np.ndarray | list | tuple):
        items = np.asarray(value, dtype=object).ravel()
    else:
        raise _bad(name, value, "a comma-separated list of numbers")
    numbers = [_to_float(name, item) for item in items]
    if not numbers:
        raise _bad(name, value, "a non-empty list of numbers")
    return numbers


def choice(*allowed: str) -> Converter:
    """Make a converter for an option taking one of a few words.

    Parameters
    ----------
    *allowed : str
        The allowed values.

    Returns
    -------
    callable
        ``convert(name, value) -> str``.
    """

    def convert(name: str, value: Any) -> str:
        word = value.strip().lower() if isinstance(value, str) else value
        if word not in allowed:
            raise _bad(name, value, "one of " + ", ".join(map(repr, allowed)))
        return word

    return convert


def path(name: str, value: Any) -> str | None:
    """Convert an optional path option to a string.

    Parameters
    ----------
    name : str
        The option's name, for the error message.
    value : None, str or os.PathLike
        The value.

    Returns
    -------
    str or None
    """
    if _is_none(value):
        return None
    if isinstance(value, str | PathLike):
        return str(value)
    raise _bad(name, value, "a path")


def paths(name: str, value: Any) -> list[str] | None:
    """Convert an optional list of paths (comma-separated in a string).

    Parameters
    ----------
    name : str
        The option's name, for the error message.
    value : None, str, os.PathLike, or sequence of those
        The value.

    Returns
    -------
    list of str or None
    """
    if _is_none(value):
        return None
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, PathLike):
        items = [str(value)]
    elif isinstance(value, list | tuple) and all(isinstance(v, str | PathLike) for v in value):
        items = [str(v) for v in value]
    else:
        raise _bad(name, value, "a path, a comma-separated list of paths or a list")
    if not items:
        raise _bad(name, value, "at least one path")
    return items


def common_options(
    *, n: int | None = None, scale: str = "unit", test_fraction: float = 0.0
) -> dict[str, Option]:
    """The options every loader has, with a loader's own defaults.

    Parameters
    ----------
    n : int, optional
        Default number of rows. For a file loader None (all rows; an integer
        subsamples without replacement); a synthetic loader generates ``n`` rows.
    scale : {"unit", "none"}
        Default scaling.
    test_fraction : float
        Default share of the rows held out as a test set (:mod:`preprocess`).

    Returns
    -------
    dict of str to Option
    """
    rows = (
        "rows to draw without replacement (none: all)"
        if n is None
        else "number of samples generated"
    )
    return {
        "n": Option(n, integer(1, optional=n is None), rows),
        "seed": Option(0, integer(0), "random seed (subsampling and generation)"),
        "center": Option(False, boolean, "subtract the column means of X and Y"),
        "scale": Option(
            scale,
            choice("unit", "none"),
            "unit: divide X so that λ_max(Σx) = 1 and Y so that s_1(Σxy) = 1",
        ),
        "test_fraction": Option(
            test_fraction,
            real(0.0, MAX_TEST_FRACTION),
            "share of the rows held out as a test set before `n` is drawn (0: none)",
        ),
        "split_seed": Option(0, integer(0), "random seed of the test split"),
    }


def _check_known(loader: str, spec: Mapping[str, Option], keys: Iterable[str]) -> None:
    unknown = [key for key in keys if key not in spec]
    if unknown:
        raise DatasetError(
            f"loader {loader!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(spec)}"
        )


def _convert(loader: str, option: Option, key: str, value: Any) -> Any:
    try:
        return option.convert(key, value)
    except DatasetError as err:
        raise DatasetError(f"loader {loader!r}: {err}") from None


TARGET = Option(
    "onehot", choice("onehot", "input"), "onehot: one-hot class targets; input: autoencoder"
)


def resolve(loader: str, spec: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert the options given to a loader, filling in defaults.

    Parameters
    ----------
    loader : str
        The loader's name, for error messages.
    spec : mapping of str to Option
        The loader's options.
    given : mapping
        The options passed (typed values or strings).

    Returns
    -------
    dict
        Every option of ``spec``, in its order, converted.

    Raises
    ------
    DatasetError
        For an unknown option, a bad value or a missing required option.
    """
    _check_known(loader, spec, given)
    resolved = {}
    for key, option in spec.items():
        value = _convert(loader, option, key, given[key]) if key in given else option.default
        if value is None and option.required:
            raise DatasetError(f"loader {loader!r}: option {key!r} is required ({option.doc})")
        resolved[key] = value
    return resolved


def parse_items(loader: str, spec: Mapping[str, Option], items: Iterable[str]) -> dict[str, Any]:
    """Parse command-line ``KEY=VALUE`` items into typed options.

    Parameters
    ----------
    loader : str
        The loader's name, for error messages.
    spec : mapping of str to Option
        The loader's options.
    items : iterable of str
        ``"key=value"`` strings.

    Returns
    -------
    dict
        The given options only, converted.

    Raises
    ------
    DatasetError
        For an item without ``=``, a repeated or unknown key, or a bad value.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DatasetError(f"loader {loader!r}: expected KEY=VALUE, got {item!r}")
        if key in parsed:
            raise DatasetError(f"loader {loader!r}: option {key!r} given twice")
        _check_known(loader, spec, [key])
        parsed[key] = _convert(loader, spec[key], key, value)
    return parsed
