"""Data at the edge of float64: exact power-of-two rescaling and the checks around it.

Products such as ``XᵀX`` overflow once entries pass about 1e154 and come out
subnormal, losing relative accuracy, once they fall below about 1e-154, long
before the entries themselves leave float64's range. Multiplying an array by
``2^-e``, with ``2^e`` just above its largest |entry| (`binary_exponent`),
changes exponents only: it is exact and reversible, and it brings the largest
entry into [1/2, 1), where products of such arrays neither overflow nor
underflow. Since every rounding is scale-equivariant under powers of two, a
statistic computed from the rescaled arrays and scaled back (`restore`) is the
very number the direct computation gives whenever that computation stays in
range, and stays accurate when it would not.

Policy, for the preprocessing and `lindyn.stats.dataset_stats`:

* NaN and infinite entries are refused, with their count and first location
  (`check_finite`).
* An array whose *largest* |entry| is subnormal (below 2.2e-308) is refused
  (`check_normal`): every entry has lost relative precision when it was
  stored, and no rescaling brings it back. Subnormal entries beside a normal
  largest one are accepted: their absolute error (at most 2^-1075) is below
  the rounding error of the largest entry, so statistics keep their accuracy
  relative to their size. For the same reason, entries more than 2^1022 times
  smaller than the largest may flush to zero when rescaled: their effect on
  any statistic is below rounding.
* A statistic which, scaled back, would overflow or be subnormal is not
  representable in float64 and is refused (`restore`).
"""

from __future__ import annotations

import math

import numpy as np

from lindyn.datasets.errors import DatasetError

__all__ = ["TINY", "binary_exponent", "check_finite", "check_normal", "restore"]

TINY = float(np.finfo(np.float64).tiny)  # smallest normal float64, 2.2e-308
_HUGE = float(np.finfo(np.float64).max)
_MANTISSA_BITS = 53
_MIN_EXPONENT = -1021  # frexp exponent of TINY: normal iff frexp exponent >= this
_MAX_EXPONENT = 1024  # frexp exponent of the largest float64


def _peak(array: np.ndarray | float) -> float:
    """Largest |entry|, without a temporary copy of the array (0 when empty)."""
    array = np.asarray(array)
    return max(float(array.max(initial=0.0)), -float(array.min(initial=0.0)))


def binary_exponent(array: np.ndarray) -> int:
    """The ``e`` with ``max|array|·2^-e`` in [1/2, 1); 0 for a zero or empty array.

    Parameters
    ----------
    array : array of finite floats

    Returns
    -------
    int
        ``np.ldexp(array, -e)`` is then the exactly rescaled array.
    """
    return math.frexp(_peak(array))[1]


def _magnitude(mantissa: float, exponent: int) -> str:
    """``mantissa·2^exponent`` in decimal, even beyond float64's range."""
    log10 = math.log10(mantissa) + exponent * math.log10(2.0)
    power = math.floor(log10)
    return f"{10 ** (log10 - power):.3g}e{power:+d}"


def check_finite(what: str, array: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Refuse NaN and infinite entries, stating how many and where the first is.

    Parameters
    ----------
    what : str
        The array, as the message should name it (e.g. ``"data.npz: array 'X'"``).
    array : 1-d or 2-d array
    rows : int array, optional
        Original row number of each row of ``array`` (after subsampling).

    Raises
    ------
    DatasetError
        If an entry is not finite.
    """
    bad = ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if not count:
        return
    nan = int(np.count_nonzero(np.isnan(array)))
    first = np.argwhere(bad)[0]
    row = int(first[0] if rows is None else rows[first[0]])
    place = f"row {row}" + (f", column {int(first[1])}" if array.ndim == 2 else "")
    raise DatasetError(
        f"{what} has {count} non-finite {'entry' if count == 1 else 'entries'} "
        f"({nan} NaN, {count - nan} infinite in float64), the first at {place} (counting from 0)"
    )


def check_normal(what: str, array: np.ndarray) -> None:
    """Refuse an array whose largest |entry| is subnormal (see the module docstring).

    Parameters
    ----------
    what : str
        The array, as the message should name it.
    array : array of finite floats

    Raises
    ------
    DatasetError
        If ``0 < max|array| < TINY``.
    """
    peak = _peak(array)
    if 0.0 < peak < TINY:
        bits = math.frexp(peak)[1] - _MIN_EXPONENT + _MANTISSA_BITS
        raise DatasetError(
            f"{what}: the largest |entry| is {peak:.3g}, below float64's smallest normal "
            f"number {TINY:.3g}: every entry is subnormal and keeps at most {bits} of "
            f"{_MANTISSA_BITS} significant bits; store the data multiplied by a large "
            "power of two (or ten)"
        )


def restore(
    what: str, value: np.ndarray | float, exponent: int, *, leading: int = 0, hint: str = ""
) -> np.ndarray:
    """Scale a statistic computed on rescaled data back: ``value·2^exponent``, if representable.

    Parameters
    ----------
    what : str
        The statistic, as the message should name it.
    value : array or float
        The statistic of the rescaled data.
    exponent : int
        The power of two to undo the rescaling.
    leading : int
        For per-component quantities (``s_i``, ``λ_i``, ``ρ_i``): the first
        ``leading`` entries must each be normal (or zero), not just the largest.
    hint : str
        Appended to the message (what the user can do about it).

    Returns
    -------
    ndarray
        Exactly ``value·2^exponent`` (a 0-d array for a float).

    Raises
    ------
    DatasetError
        If the largest |entry| would overflow, or be subnormal (then every
        entry loses relative precision), or so would one of the ``leading``.
    """
    value = np.asarray(value, dtype=np.float64)
    peak = _peak(value)
    head = np.abs(value.ravel()[:leading])
    head = head[head > 0]
    low = float(head.min()) if head.size else peak

    def refuse(size: float, cause: str) -> DatasetError:
        mantissa, power = math.frexp(size)
        return DatasetError(
            f"{what} would be about {_magnitude(mantissa, power + exponent)}, {cause}"
            + (f"; {hint}" if hint else "")
        )

    if peak and math.frexp(peak)[1] + exponent > _MAX_EXPONENT:
        raise refuse(peak, f"beyond float64's largest number {_HUGE:.3g}")
    if low and math.frexp(low)[1] + exponent < _MIN_EXPONENT:
        raise refuse(
            low,
            f"below float64's smallest normal number {TINY:.3g}, where it loses relative precision",
        )
    return np.ldexp(value, exponent)
