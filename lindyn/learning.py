"""How a run learns: the effective rank of ``W(t)`` and whether its components come one at a time.

The one home of both measures: the aggregation (:func:`lindyn.aggregate.learning`)
stores them per run, and the report (:mod:`lindyn.report.measures`) and the figures
read them or call these functions.

Effective rank (Roy & Vetterli, 2007)
    ``exp(H(p))`` with ``p_i = σ_i / Σ_j σ_j`` the normalised singular values of
    ``W(t)`` and ``H`` the Shannon entropy (``0 log 0 = 0``): 1 for a rank-one
    matrix, ``k`` for ``k`` equal singular values and ``0`` elsewhere. From a
    small aligned init (equal singular values) it drops towards 1 while the first
    component is learned; along a sequential path it then climbs a staircase 2,
    3, …, while when every component grows at once it never drops.
Sequential pair
    Components ``i`` and ``i + 1`` (by decreasing ``s_i``) are learned
    sequentially when ``t_{i+1}(0.1) ≥ t_i(0.5)``: component ``i + 1`` is still
    below 10 % of its target when component ``i`` reaches half of its
    (``t_i(f)`` the first step with ``u_i ≥ f·ρ_i``). Disjoint, the stronger form,
    when ``t_{i+1}(0.1) > t_i(0.9)`` (THEORY §7's separation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["effective_rank", "sequential_pairs"]


def effective_rank(singular_values: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """``exp`` of the Shannon entropy of the normalised singular values along ``axis``.

    Parameters
    ----------
    singular_values : array_like
        Non-negative singular values (any order) along ``axis``.
    axis : int
        The axis of the singular values.

    Returns
    -------
    ndarray
        The effective rank, in ``[1, n]`` for ``n`` values along ``axis``; NaN where
        a value is NaN (a step past a run's stop) or all are zero.

    Examples
    --------
    >>> float(effective_rank([3.0, 0.0, 0.0])), float(effective_rank([2.0, 2.0, 0.0]))
    (1.0, 2.0)
    """
    sv = np.asarray(singular_values, dtype=float)
    total = np.sum(sv, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sv / np.where(total > 0, total, np.nan)
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -np.sum(terms, axis=axis)
    return np.where(np.squeeze(total > 0, axis=axis), np.exp(entropy), np.nan)


def sequential_pairs(
    t10: xr.DataArray, t50: xr.DataArray, t90: xr.DataArray, disjoint: bool = False
) -> xr.DataArray:
    """Per consecutive pair: 1 if learned sequentially, 0 if not, NaN if unknown.

    Parameters
    ----------
    t10, t50, t90 : xarray.DataArray
        First crossing steps of ``0.1·ρ_i``, ``0.5·ρ_i``, ``0.9·ρ_i`` along
        ``component`` (NaN: never crossed, or not a usable run).
    disjoint : bool
        Ask for ``t_{i+1}(0.1) > t_i(0.9)`` instead of ``t_{i+1}(0.1) ≥ t_i(0.5)``.

    Returns
    -------
    xarray.DataArray
        Pair ``(i, i+1)`` at component ``i``; NaN at the last component and where
        a crossing of the pair is unknown.
    """
    lead = t90 if disjoint else t50
    nxt = t10.shift(component=-1)
    later = nxt > lead if disjoint else nxt >= lead
    return later.astype(float).where(nxt.notnull() & lead.notnull())
