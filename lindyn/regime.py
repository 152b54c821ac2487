"""Where the theory says its claims show: init scales, step sizes and step budgets.

The paper's statements are limits (vanishing initialisation δ → ∞, small steps
η → 0). This module turns them into numbers for a given dataset, from its spectra
``s_i``, ``λ_i`` (``ρ_i = s_i/λ_i``, :class:`lindyn.stats.Stats`) and the depth L,
for the aligned initialisation (every layer at ``e^{−δ}``, ``u_i(0) = e^{−Lδ}``)
and ε = 0 (THEORY §4):

* :func:`crossing_steps`: the gradient flow's first crossing ``t_i(f)`` of ``f·ρ_i``,
  in gradient-descent steps (THEORY §5; step t is flow time ηt);
* :func:`pair_delta`, :func:`sequential_delta`: the smallest δ from which the flow
  learns consecutive components sequentially, by the report's criterion
  ``t_{i+1}(0.1) ≥ t_i(0.5)`` and with disjoint windows ``t_{i+1}(0.1) > t_i(0.9)``;
* :func:`step_budget`: the steps a run needs for its components' 0.9 crossings;
* :func:`separating_eta`: the largest η at which Corollary 3 guarantees separation
  (THEORY §7), against the eigen-gap condition's bound.

Everything reuses the closed forms of :mod:`lindyn.flow` and :mod:`lindyn.theory`.
Crossing times of the flow do not depend on η in flow time, so neither do the
sequential δ's; only step counts and Corollary 3 (a statement about GD) do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lindyn.config import default
from lindyn.flow import flow_crossing_time
from lindyn.theory import crossing_bracket, eigengap_condition, separation

__all__ = [
    "BUDGET_MARGIN",
    "SeparatingEta",
    "SequentialDelta",
    "crossing_steps",
    "pair_delta",
    "separating_eta",
    "sequential_delta",
    "step_budget",
]

BUDGET_MARGIN: float = default("budget_margin")
"""Default factor on the theory's step budget: config ``budget_margin``'s default."""
# The report's criteria (lindyn.report.rules, "Sequential learning").
_NEXT, _HALF, _FULL = 0.1, 0.5, 0.9
# e^{−Lδ} underflows beyond Lδ = this (≈ 708): no representable init is smaller.
_LOG_TINY = -float(np.log(np.finfo(float).tiny))


class SequentialDelta(NamedTuple):
    """Smallest per-layer δ from which the ε = 0 flow learns components sequentially.

    Attributes
    ----------
    pairs : ndarray, shape (n−1,)
        Pair (i, i+1) is sequential, ``t_{i+1}(0.1) ≥ t_i(0.5)``, at every δ ≥ this.
    disjoint : ndarray, shape (n−1,)
        The same for disjoint windows, ``t_{i+1}(0.1) > t_i(0.9)``.
    fraction : float
        At every δ ≥ this, at least ``threshold`` of the pairs are sequential.
    fraction_disjoint : float
        The same for disjoint windows.
    every, every_disjoint : float
        At every δ ≥ this, all pairs are sequential (disjoint): the largest pair δ.
    """

    pairs: NDArray[np.float64]
    disjoint: NDArray[np.float64]
    fraction: float
    fraction_disjoint: float
    every: float
    every_disjoint: float


class SeparatingEta(NamedTuple):
    """Step sizes that separate consecutive components (depth 2), shape (..., n−1).

    Attributes
    ----------
    corollary3 : ndarray
        Largest η with ``t_i⁺(1−f) < t_{i+1}⁻(f)`` (Corollary 3's guarantee); the
        guarantee holds just below it and at no η above it. 0 where no η
        separates the pair at this δ, NaN where the bracket does not apply.
    eigengap : ndarray
        Bound of the asymptotic eigen-gap condition
        ``(s_i − s_{i+1})/s_i > 1.5 η s_i``, i.e. ``η < (s_i − s_{i+1})/(1.5 s_i²)``
        (0 where the gap is not positive).
    """

    corollary3: NDArray[np.float64]
    eigengap: NDArray[np.float64]


def _check_depth(depth: int, minimum: int) -> int:
    if int(depth) != depth or depth < minimum:
        raise ValueError(f"depth must be an integer >= {minimum}, got {depth!r}")
    return int(depth)


def _spectra(s: ArrayLike, lam: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    s, lam = (np.asarray(a, dtype=float) for a in (s, lam))
    if s.ndim != 1 or s.shape != lam.shape:
        raise ValueError(f"s and lam must be 1-d of one length, got {s.shape} and {lam.shape}")
    return s, lam


def crossing_steps(
    s: ArrayLike, lam: ArrayLike, depth: int, eta: ArrayLike, delta: ArrayLike, f: ArrayLike
) -> NDArray[np.float64]:
    """The flow's first crossing ``t_i(f)`` of ``f·ρ_i``, in GD steps (THEORY §4, §5).

    Parameters
    ----------
    s, lam : array_like
        Singular value of Σxy and variance of each component.
    depth : int
        Depth L ≥ 1.
    eta : array_like
        Step size η (step t of GD is time ηt of the flow).
    delta : array_like
        Per-layer initialisation scale δ: ``u_i(0) = e^{−Lδ}``.
    f : array_like
        Fraction, ``0 < f < 1``.

    Returns
    -------
    ndarray
        ``flow_crossing_time(f, s, λ, L, e^{−Lδ}) / η``, broadcast over all
        arguments; 0 where ``u_i(0) ≥ f·ρ_i``, NaN outside the flow's domain.
        At depth 2 this is ``c/(2ηs)``, ``c = log(y(0) f/(1−f))`` (THEORY §7).
    """
    depth = _check_depth(depth, 1)
    u0 = np.exp(-depth * np.asarray(delta, dtype=float))
    return flow_crossing_time(f, s, lam, depth, u0) / np.asarray(eta, dtype=float)


def _pair_delta(
    s1: float, l1: float, s2: float, l2: float, depth: int, f_prev: float, f_next: float
) -> float:
    """`pair_delta` of one pair: the largest zero of ``t_2(f_next) − t_1(f_prev)``, floored at 0."""
    from scipy.optimize import brentq  # only the root finders need scipy

    if not (s1 > 0 and s2 > 0 and l1 > 0 and l2 > 0):
        return np.nan
    if s2 >= s1:  # equal (or reversed) transitions τ_L(δ)/s at every δ: never separated
        return np.inf

    def gap(delta: float) -> float:
        u0 = np.exp(-depth * delta)
        later = flow_crossing_time(f_next, s2, l2, depth, u0)
        earlier = flow_crossing_time(f_prev, s1, l1, depth, u0)
        return float(later - earlier)

    # Where both crossings are after time 0, dt/dδ = u0^{2/L−1}/(s − λu0), so the gap's
    # slope has the sign of (s1 − s2) − (l1 − l2)u0: it falls, then rises for good once
    # u0 < (s1 − s2)/(l1 − l2). From that minimum on the gap has at most one zero.
    # δ_a: from here on both crossings are after time 0 (u0 < f·ρ).
    low = max(-np.log(f_prev * s1 / l1), -np.log(f_next * s2 / l2)) / depth
    if l1 > l2:
        low = max(low, np.log((l1 - l2) / (s1 - s2)) / depth)
    if gap(low) >= 0:  # then ≥ 0 at every δ: it falls up to `low`, below δ_a t_1 = 0
        return 0.0
    step = 1.0
    while depth * (low + step) <= _LOG_TINY:
        high = low + step
        if gap(high) > 0:
            return max(brentq(gap, low, high, xtol=1e-13, rtol=4 * np.finfo(float).eps), 0.0)
        low, step = high, 2 * step  # the gap rises from `low` on: its zero lies above
    return np.inf


def pair_delta(
    s: ArrayLike, lam: ArrayLike, depth: int, f_prev: float, f_next: float
) -> NDArray[np.float64]:
    """Smallest δ from which the flow reaches ``f_next·ρ_{i+1}`` no earlier than ``f_prev·ρ_i``.

    Solves ``t_{i+1}(f_next) = t_i(f_prev)`` for the per-layer δ of the aligned
    init with the flow's closed-form crossing times (THEORY §5) by Brent's
    method. The gap ``t_{i+1}(f_next) − t_i(f_prev)`` grows like
    ``τ_L(δ)(1/s_{i+1} − 1/s_i)`` (THEORY §6), so it is positive for all large δ;
    the result is its largest zero, from which on the pair stays ordered.

    Parameters
    ----------
    s, lam : array_like, shape (n,)
        Spectra of the components, s in decreasing order.
    depth : int
        Depth L ≥ 2 (the linear model learns every component at once).
    f_prev, f_next : float
        Fractions of the earlier and the later component, in (0, 1).

    Returns
    -------
    ndarray, shape (n−1,)
        δ ≥ 0: 0 where the pair is ordered at every δ ≥ 0; ``inf`` where no
        δ orders it (``s_{i+1} ≥ s_i``: equal transitions ``τ_L(δ)/s``, or an
        init beyond floating point, ``e^{−Lδ}`` below 1e-308); NaN where
        ``s ≤ 0`` or ``λ ≤ 0``.
    """
    s, lam = _spectra(s, lam)
    depth = _check_depth(depth, 2)
    for name, f in (("f_prev", f_prev), ("f_next", f_next)):
        if not 0 < f < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {f!r}")
    return np.array(
        [
            _pair_delta(s[i], lam[i], s[i + 1], lam[i + 1], depth, f_prev, f_next)
            for i in range(s.size - 1)
        ]
    )


def _fraction_delta(deltas: NDArray[np.float64], threshold: float) -> float:
    """Smallest δ from which at least ``threshold`` of the pairs are ordered."""
    if not deltas.size:
        return np.nan
    need = int(np.ceil(round(threshold * deltas.size, 9)))  # round: 0.7·10 is 7.000…1
    return float(np.sort(deltas)[need - 1]) if need else 0.0  # NaN pairs sort last


def sequential_delta(
    s: ArrayLike, lam: ArrayLike, depth: int, threshold: float = 0.75
) -> SequentialDelta:
    """Smallest δ per layer from which the ε = 0 flow predicts sequential learning.

    The report's criterion (``lindyn.report.rules``, "Sequential learning"):
    pair (i, i+1) is sequential when ``t_{i+1}(0.1) ≥ t_i(0.5)``, with disjoint
    windows when ``t_{i+1}(0.1) > t_i(0.9)``; the claim holds when at least
    ``threshold`` of the consecutive pairs are sequential. Crossing times are
    the flow's (THEORY §5), the same in flow time for every η.

    Parameters
    ----------
    s, lam : array_like, shape (n,)
        Spectra of the components the claim counts (e.g. the first
        ``min(r, rank Σxy)``), s decreasing.
    depth : int
        Depth L ≥ 2.
    threshold : float, optional
        Fraction of sequential pairs the claim needs, in [0, 1].

    Returns
    -------
    SequentialDelta
        Per pair (:func:`pair_delta`); for the fraction the
        ``⌈threshold·(n−1)⌉``-th smallest pair δ, for all pairs the largest
        (NaN without pairs).
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    pairs = pair_delta(s, lam, depth, _HALF, _NEXT)
    disjoint = pair_delta(s, lam, depth, _FULL, _NEXT)
    return SequentialDelta(
        pairs,
        disjoint,
        _fraction_delta(pairs, threshold),
        _fraction_delta(disjoint, threshold),
        _fraction_delta(pairs, 1.0),
        _fraction_delta(disjoint, 1.0),
    )


def step_budget(
    s: ArrayLike,
    lam: ArrayLike,
    depth: int,
    eta: ArrayLike,
    delta: ArrayLike,
    *,
    f: float = _FULL,
    margin: float = BUDGET_MARGIN,
    max_steps: int = 10**6,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Steps a run needs for the ``f``-crossings of the given components, with a margin.

    The need is the latest crossing over the components: the flow's
    :func:`crossing_steps` (THEORY §5) or, at depth 2, Corollary 3's upper bound
    ``t⁺`` on the GD crossing (THEORY §7), whichever is later; at L ≥ 3 the
    margin covers the gap between GD and the flow (relative ``O(ηs)``). Both
    hold only while GD approaches every target without overshooting: its
    factor at the target, ``1 − ηLλ_iρ_i^{2−2/L}`` (the scalar recursion of
    THEORY §4 linearised at ``u = ρ``), must be ≥ 0; at depth 2 that is
    Theorem 3's ``ηs_i ≤ 1/2``. Beyond, the need is unknown: the budget is
    ``max_steps``, reported as capped. At depth 1 the flow starts from
    ``u(0) = 0``, whatever δ: the latest crossing from any start in ``[0, f·ρ)``
    (the aligned init of width ``r < m`` starts components past r at 0).

    Parameters
    ----------
    s, lam : array_like, shape (n,)
        Spectra of the components the run must see cross (e.g. the first
        ``min(r, rank Σxy)``).
    depth : int
        Depth L ≥ 1.
    eta, delta : array_like
        Step sizes and per-layer init scales (aligned init), broadcast together.
    f : float, optional
        Fraction to cross, in (0, 1).
    margin : float, optional
        Factor ≥ 1 applied to the need.
    max_steps : int, optional
        Cap on the budget.

    Returns
    -------
    budget : ndarray of int64
        ``min(⌈margin · need⌉, max_steps)``, at least 1; shape of ``eta`` and
        ``delta`` broadcast (0-d for scalars).
    capped : ndarray of bool
        Whether the cap cut the budget short (also where the need is unknown:
        a step size beyond the domain above, or ``λ_i = 0``).
    """
    s, lam = _spectra(s, lam)
    depth = _check_depth(depth, 1)
    if not (np.isfinite(margin) and margin >= 1):
        raise ValueError(f"margin must be a finite number >= 1, got {margin!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if not 0 < f < 1:
        raise ValueError(f"f must lie in (0, 1), got {f!r}")
    eta, delta = (
        a[..., None]
        for a in np.broadcast_arrays(np.asarray(eta, dtype=float), np.asarray(delta, dtype=float))
    )
    need = crossing_steps(s, lam, depth, eta, np.inf if depth == 1 else delta, f)
    if depth == 2:
        _, t_plus = crossing_bracket(s, lam, np.exp(-2 * delta), eta, f)
        need = np.fmax(need, t_plus)  # fmax: the flow where the bracket does not apply (s = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        overshoot = eta * depth * lam * (s / lam) ** (2 - 2 / depth) > 1
    need = np.where(np.isnan(need) | overshoot, np.inf, need).max(axis=-1, initial=0.0)
    want = np.ceil(margin * need)
    capped = want > max_steps
    budget = np.where(capped, max_steps, np.maximum(want, 1)).astype(np.int64)
    return budget, capped


def _pair_eta(s1: float, l1: float, s2: float, l2: float, u0: float, f: float) -> float:
    """`separating_eta`'s Corollary 3 bound for one pair at one init ``u0 = e^{−2δ}``."""
    from scipy.optimize import brentq  # only the root finders need scipy

    if not (s1 > 0 and s2 > 0 and l1 > 0 and l2 > 0 and u0 > 0):
        return np.nan
    eta_max = 0.5 / max(s1, s2)  # the bracket's domain: ηs ≤ 1/2 for both
    # Corollary 3's c = log(y(0) f/(1−f)) is 2s times the depth-2 flow's crossing time.
    c1 = 2 * s1 * float(flow_crossing_time(1 - f, s1, l1, 2, u0))
    c2 = 2 * s2 * float(flow_crossing_time(f, s2, l2, 2, u0))

    def separated(eta: float) -> bool:
        return bool(separation([s1, s2], [l1, l2], u0, eta, f)[0])

    if c2 <= 0 or c1 <= 0:  # i+1 crosses f at step 0 (never apart), or i is done at 0
        return eta_max if separated(eta_max) else 0.0

    # Without the ceiling of t⁺ the guarantee reads t⁻_{i+1}(η) > t⁺_i(η), and the ratio
    # t⁻/t⁺ = (c2/c1)·2log(1+ηs1)/(−log(1−2ηs2)) falls with η: one threshold η_c.
    def log_ratio(eta: float) -> float:
        if eta == 0:
            return float(np.log(c2 * s1 / (c1 * s2)))
        return float(np.log(c2 / c1 * 2 * np.log1p(eta * s1) / -np.log1p(-2 * eta * s2)))

    if log_ratio(0.0) <= 0:
        return 0.0
    if log_ratio(eta_max) > 0:
        if separated(eta_max):
            return eta_max
        eta_c = eta_max
    else:
        eta_c = brentq(log_ratio, 0.0, eta_max, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    # With the ceiling, t⁺ ≤ N < t⁻ holds for the integers N > t⁻(η_c) only; the largest
    # η is where t⁻ = N for the smallest such N: t⁻ = c2/(−log(1−2ηs2)) inverted.
    t_minus = c2 / -np.log1p(-2 * eta_c * s2)
    n = np.floor(t_minus) + 1
    return float(-np.expm1(-c2 / n) / (2 * s2))


def separating_eta(
    s: ArrayLike, lam: ArrayLike, delta: ArrayLike, f: float = _NEXT
) -> SeparatingEta:
    """Largest step sizes at which consecutive components are learned apart (depth 2).

    Corollary 3 (THEORY §7) separates pair (i, i+1) when
    ``t_i⁺(1−f) < t_{i+1}⁻(f)`` (:func:`lindyn.theory.separation`); this
    returns the largest η for which that holds, found by Brent's method on the
    ratio of the bounds and made exact for the ceiling in ``t⁺``. It also
    returns the η bound of the asymptotic eigen-gap condition
    (:func:`lindyn.theory.eigengap_condition`), so that a report can say where
    that condition is loose: the bracket needs δ large enough that the flow
    separates the pair (for η → 0 it is the flow's criterion
    ``t_{i+1}(f) > t_i(1−f)``), and then allows η up to about the eigen-gap bound.

    Parameters
    ----------
    s, lam : array_like, shape (n,)
        Spectra, s decreasing.
    delta : array_like
        Per-layer init scales (``u(0) = e^{−2δ}``), any shape D.
    f : float, optional
        Fraction, ``0 < f < 1/2``.

    Returns
    -------
    SeparatingEta
        Arrays of shape ``(*D, n−1)``.
    """
    s, lam = _spectra(s, lam)
    if not 0 < f < 0.5:
        raise ValueError(f"f must lie in (0, 1/2), got {f!r}")
    u0 = np.exp(-2 * np.asarray(delta, dtype=float))
    out = np.empty((*u0.shape, max(s.size - 1, 0)))
    for index in np.ndindex(u0.shape):
        out[index] = [
            _pair_eta(s[i], lam[i], s[i + 1], lam[i + 1], float(u0[index]), f)
            for i in range(s.size - 1)
        ]
    # The condition's margin falls linearly in η, by 1.5 s_i per unit η.
    _, gap = eigengap_condition(s, 0.0)
    bound = np.maximum(gap, 0.0) / (1.5 * s[:-1])
    return SeparatingEta(out, np.broadcast_to(bound, out.shape).copy())
