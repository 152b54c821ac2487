"""Initialisations of a depth-L linear network at scale ``e^{−δ}`` per layer.

Two modes, with one meaning of ``δ``, and a per-layer scale ratio for both:

``aligned``
    THEORY §4: ``W_1 = a₀ U_{:, :r}``, ``W_l = a₀ I_r`` for the middle layers,
    ``W_L = a₀ V_{:, :r}ᵀ`` with ``a₀ = e^{−δ}``: every layer has all its
    non-zero singular values equal to ``e^{−δ}`` and the product starts at
    ``u_i(0) = e^{−Lδ}``. If the width ``r`` exceeds ``m = min(d, p)``, the
    extra hidden units start at zero and stay there (they receive no gradient).
    For ``L = 1``: ``W = a₀ U_{:, :r} V_{:, :r}ᵀ`` with ``r = min(width, m)``.
``random``
    A layer of shape ``a×b`` is ``e^{−δ} G / sqrt(max(a, b))`` with ``G``
    standard Gaussian: its singular values concentrate in
    ``e^{−δ}(1 ± sqrt(min(a, b)/max(a, b)))``, so its spectral scale, and its
    squared Frobenius norm ``≈ e^{−2δ} min(a, b)``, match the aligned layer's.

Unbalanced layers (``ratio``, config ``grid.ratio``): layer ``l`` of ``L ≥ 2`` is
scaled by ``ratio^{(L+1−2l)/(2(L−1))}`` (:func:`layer_scales`), geometric from
``ratio^{1/2}`` at the first layer to ``ratio^{−1/2}`` at the last: ``ratio`` is
the first layer's scale over the last's and the product of the factors is 1, so
the aligned product still starts at ``u_i(0) = e^{−Lδ}``. ``ratio = 1`` is the
balanced init above, bit for bit. At ``L = 1`` there is one layer and nothing to
unbalance: the ratio is ignored.

Gradient flow conserves ``D_l = W_lᵀW_l − W_{l+1}W_{l+1}ᵀ`` (``1 ≤ l < L``,
:func:`balancedness`; gradient descent changes it by ``O(η²)`` per step). The
balanced aligned init starts at ``D_l = 0`` on the hidden units both layers use;
a ratio ``ρ ≠ 1`` starts it at ``a_l² − a_{l+1}² = e^{−2δ}(ρ^{(L+1−2l)/(L−1)} −
ρ^{(L−1−2l)/(L−1)})`` there (``a_l`` the layer scales), an imbalance the
dynamics keeps: the conserved-quantity view of Kunin et al. (2024). The larger
the imbalance against the product's scale, the less the larger layer moves
relatively, towards a linear model in the other layer (lazy): the balanced,
sequential dynamics of THEORY §4 holds at ratio 1 only.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

from lindyn.config import allowed
from lindyn.runs import BALANCED
from lindyn.stats import Stats

__all__ = ["BALANCED", "INIT_MODES", "balancedness", "init_layers", "layer_scales", "layer_shapes"]

INIT_MODES = allowed("grid.init")


def layer_shapes(d: int, p: int, depth: int, width: int) -> list[tuple[int, int]]:
    """Shapes of ``W_1, …, W_L`` for a depth-``depth`` network of hidden width ``width``."""
    if depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth}")
    if depth == 1:
        return [(d, p)]
    if width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width}")
    return [(d, width), *[(width, width)] * (depth - 2), (width, p)]


def layer_scales(depth: int, delta: float, ratio: float = BALANCED) -> list[float]:
    """Scale of each layer: ``e^{−δ}·ratio^{(L+1−2l)/(2(L−1))}`` for ``l = 1, …, L``.

    Parameters
    ----------
    depth : int
        Number of layers ``L ≥ 1`` (at ``L = 1`` the ratio is ignored).
    delta : float
        Init scale ``δ``.
    ratio : float
        First layer's scale over the last's, finite and ``> 0``.

    Returns
    -------
    list of float
        Their product is ``e^{−Lδ}`` whatever the ratio; all equal ``e^{−δ}`` at ratio 1.

    Examples
    --------
    >>> [round(a, 6) for a in layer_scales(3, 0.0, 4.0)]
    [2.0, 1.0, 0.5]
    """
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be a finite number > 0, got {ratio!r}")
    a0 = float(np.exp(-delta))
    if depth == 1 or ratio == BALANCED:
        return [a0] * depth
    return [a0 * ratio ** ((depth + 1 - 2 * k) / (2 * (depth - 1))) for k in range(1, depth + 1)]


def balancedness(layers: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The quantities gradient flow conserves: ``W_lᵀW_l − W_{l+1}W_{l+1}ᵀ``, ``1 ≤ l < L``.

    Parameters
    ----------
    layers : sequence of ndarray
        ``W_1, …, W_L`` (``W_l`` of shape ``r_{l−1} × r_l``).

    Returns
    -------
    list of ndarray
        ``L − 1`` symmetric ``r_l × r_l`` matrices (empty for ``L = 1``).
    """
    return [a.T @ a - b @ b.T for a, b in itertools.pairwise(layers)]


def init_layers(
    stats: Stats,
    depth: int,
    width: int,
    delta: float,
    mode: Literal["aligned", "random"] = "aligned",
    seed: int = 0,
    ratio: float = BALANCED,
) -> list[np.ndarray]:
    """Initial layers ``W_1, …, W_L`` in the data's original input basis.

    Parameters
    ----------
    stats : Stats
        Statistics of the dataset (its singular bases for aligned init).
    depth : int
        Number of layers ``L ≥ 1``.
    width : int
        Hidden width ``r ≥ 1`` (for ``L = 1``: rank of the aligned init).
    delta : float
        Init scale: every layer starts at ``e^{−δ}``.
    mode : {"aligned", "random"}
        See the module docstring.
    seed : int
        Seed of the Gaussian draw (``random`` only).
    ratio : float
        First layer's scale over the last's (:func:`layer_scales`; 1: balanced).

    Returns
    -------
    list of ndarray
    """
    if mode not in INIT_MODES:
        raise ValueError(f"init must be one of {INIT_MODES}, got {mode!r}")
    if not np.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    shapes = layer_shapes(stats.d, stats.p, depth, width)
    scales = layer_scales(depth, delta, ratio)
    if mode == "random":
        rng = np.random.default_rng(seed)
        return [
            a * rng.standard_normal(shape) / np.sqrt(max(shape))
            for a, shape in zip(scales, shapes, strict=True)
        ]

    m = stats.m
    r = min(width, m)
    if depth == 1:
        return [scales[0] * stats.U[:, :r] @ stats.V[:, :r].T]
    first = np.zeros(shapes[0])
    first[:, :r] = scales[0] * stats.U[:, :r]
    last = np.zeros(shapes[-1])
    last[:r, :] = scales[-1] * stats.V[:, :r].T
    middle = [a * np.eye(width) for a in scales[1:-1]]
    return [first, *middle, last]
