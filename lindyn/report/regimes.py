"""What the theory says each claim needs to show: δ, η and step budget (THEORY §6, §7).

Thin layer over :mod:`lindyn.regime` (and the closed-form flow of
:mod:`lindyn.flow`): one function per kind of claim, each returning a
:class:`~lindyn.report.rules.Need` for the dataset's spectra ``s_i``, ``λ_i`` (the
first components a depth-2 run learns), depth 2, aligned init and ε = 0.
Where a criterion is monotone in δ but has no closed form for its threshold, the
smallest δ is found on :data:`DELTAS` (resolution 0.025) or by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from lindyn import regime, theory
from lindyn.report.rules import Grid, Need

__all__ = [
    "DELTAS",
    "bound_need",
    "location_need",
    "path_need",
    "separation_need",
    "sequential_need",
    "width_need",
]

# Per-layer δ scanned for the smallest that meets a criterion. Beyond ≈ 354, e^{−2δ}
# underflows: no aligned init is that small.
DELTAS = np.linspace(0.0, 350.0, 14001)
_NO_CAP = 10**15  # regime.step_budget's cap, set out of the way: we want the need itself


def _steps(s: NDArray, lam: NDArray, grid: Grid, delta: float) -> tuple[float, float]:
    """Steps for every 0.9 crossing at the grid's smallest η and δ ≥ ``delta``, and that δ."""
    at = min((d for d in grid.deltas if d >= delta), default=delta)
    budget, _ = regime.step_budget(s, lam, 2, grid.eta_min, at, max_steps=_NO_CAP)
    return float(budget), at


def _need(
    s: NDArray, lam: NDArray, grid: Grid, delta: float, depths: Sequence[int], **extra
) -> Need:
    if not math.isfinite(delta):
        return Need(delta, grid.eta_min, math.nan, **extra)
    steps, at = _steps(s, lam, grid, delta)
    deep = {int(d): max(float(theory.tau_inverse(d, delta)), 0.0) for d in depths if d >= 3}
    return Need(delta, grid.eta_min, steps, steps_delta=at, deep=deep, **extra)


def _first_delta(holds: NDArray[np.bool_]) -> float:
    """The smallest δ of :data:`DELTAS` from which ``holds`` stays true (inf if never)."""
    if not holds[-1]:
        return math.inf
    failing = np.flatnonzero(~holds)
    return float(DELTAS[failing[-1] + 1]) if failing.size else float(DELTAS[0])


def _quantile(deltas: NDArray, threshold: float) -> float:
    """Smallest δ from which at least ``threshold`` of the pairs meet their criterion."""
    finite = np.sort(np.where(np.isnan(deltas), np.inf, deltas))
    need = math.ceil(round(threshold * finite.size, 9))
    return float(finite[need - 1]) if need else 0.0


def sequential_need(
    s: NDArray, lam: NDArray, grid: Grid, threshold: float, depths: Sequence[int]
) -> tuple[Need, regime.SequentialDelta]:
    """δ from which the ε = 0 flow makes ``threshold`` of the pairs sequential."""
    seq = regime.sequential_delta(s, lam, 2, threshold)
    return _need(s, lam, grid, seq.fraction, depths), seq


def _flow_times(s: NDArray, lam: NDArray, f: float) -> NDArray:
    """Flow crossing times ``t_i(f)`` (η = 1) at every δ of :data:`DELTAS`, shape (δ, i)."""
    return regime.crossing_steps(s, lam, 2, 1.0, DELTAS[:, None], f)


def width_need(
    s: NDArray, lam: NDArray, grid: Grid, threshold: float, depths: Sequence[int]
) -> Need:
    """δ from which the flow's median relative width ``(t(0.9) − t(0.1))/t(0.5)`` ≤ threshold."""
    t10, t50, t90 = (_flow_times(s, lam, f) for f in (0.1, 0.5, 0.9))
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.median(np.where(t50 > 0, (t90 - t10) / t50, np.inf), axis=1)
    return _need(s, lam, grid, _first_delta(width <= threshold), depths)


def location_need(
    s: NDArray, lam: NDArray, grid: Grid, threshold: float, depths: Sequence[int]
) -> Need:
    """δ from which the flow's median ``|t(0.5)·s_i/τ_2(δ) − 1|`` ≤ threshold."""
    delta = DELTAS[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(delta > 0, np.abs(_flow_times(s, lam, 0.5) * s / delta - 1), np.inf)
    return _need(s, lam, grid, _first_delta(np.median(error, axis=1) <= threshold), depths)


def bound_need(s: NDArray, lam: NDArray, grid: Grid) -> Need:
    """Theorem 3 and Corollary 3 hold at every δ with ``ηs_i ≤ 1/2``; the budget at δ_max."""
    steps, at = _steps(s, lam, grid, grid.delta_max)
    return Need(0.0, grid.eta_min, steps, steps_delta=at, eta_max=0.5 / float(np.max(s)))


def _bisect(separated: Callable[[float], bool], low: float) -> float:
    """Smallest δ ≥ ``low`` with ``separated(δ)``, assuming it stays true above (inf if none)."""
    high = max(2 * low, low + 1.0)
    while not separated(high):
        low, high = high, 2 * high
        if high > DELTAS[-1]:
            return math.inf
    while high - low > 1e-3 * high:
        mid = 0.5 * (low + high)
        low, high = (low, mid) if separated(mid) else (mid, high)
    return high


def separation_need(
    s: NDArray, lam: NDArray, grid: Grid, threshold: float, depths: Sequence[int]
) -> tuple[Need, NDArray, NDArray]:
    """δ from which Corollary 3 separates ``threshold`` of the eigen-gap pairs at the smallest η.

    Returns the need, each pair's δ (NaN for pairs that miss the eigen-gap
    condition at that η), and each pair's δ from which the flow separates it,
    ``t_{i+1}(0.1) > t_i(0.9)``, at any η (:func:`lindyn.regime.pair_delta`).
    """
    eta = grid.eta_min
    ok, _ = theory.eigengap_condition(s, eta)
    # For η → 0 the bracket separates a pair from the flow's disjoint-window δ on.
    flow = regime.pair_delta(s, lam, 2, 0.9, 0.1)
    pairs = np.full(ok.shape, np.nan)
    for i in np.flatnonzero(ok):

        def separated(delta: float, i: int = i) -> bool:
            eta_i = regime.separating_eta(s[i : i + 2], lam[i : i + 2], delta).corollary3[0]
            return bool(eta_i >= eta)

        pairs[i] = math.inf if not math.isfinite(flow[i]) else _bisect(separated, flow[i])
    candidates = pairs[ok]
    if not candidates.size:
        need = Need(math.inf, eta, math.nan, never="no pair meets the eigen-gap condition")
        return need, pairs, flow
    delta = _quantile(candidates, threshold)
    never = ""
    if not math.isfinite(delta):
        apart = int(np.isfinite(candidates).sum())
        never = (
            f"Corollary 3 separates only {apart} of the {candidates.size} pairs meeting the "
            f"eigen-gap condition at η = {eta:g} at any δ (s_i ≈ s_{{i+1}})"
        )
    return _need(s, lam, grid, delta, depths, never=never), pairs, flow


def _flow_path_distance(s: NDArray, lam: NDArray, delta: float) -> float:
    """Largest over 1 ≤ k < n of ``min_t ‖W(t) − W_k^seq‖/‖W_k^seq‖`` on the ε = 0 flow."""
    from lindyn.flow import flow_component

    rho = s / lam
    t = np.geomspace(1e-3 * (delta + 1) / s.max(), 20 * (delta + 5) / s.min(), 4000)[:, None]
    u = flow_component(t, s, lam, 2, np.exp(-2 * delta))
    worst = 0.0
    for k in range(1, s.size):
        square = ((u[:, :k] - rho[:k]) ** 2).sum(1) + (u[:, k:] ** 2).sum(1)
        worst = max(worst, float(np.sqrt(square.min() / (rho[:k] ** 2).sum())))
    return worst


def path_need(
    s: NDArray, lam: NDArray, grid: Grid, tolerance: float, depths: Sequence[int]
) -> Need:
    """δ from which the ε = 0 flow comes within ``tolerance`` of every intermediate W_k^seq."""
    delta = _bisect(lambda d: _flow_path_distance(s, lam, d) <= tolerance, 0.0)
    never = (
        ""
        if math.isfinite(delta)
        else f"the ε = 0 flow misses some W_k^seq at every δ ≤ {DELTAS[-1]:g} (near-equal s_i)"
    )
    return _need(s, lam, grid, delta, depths, never=never)
