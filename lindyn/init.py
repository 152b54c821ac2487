"""Initialisations of a depth-L linear network at scale ``e^{−δ}`` per layer.

Two modes, with one meaning of ``δ``:

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
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lindyn.config import allowed
from lindyn.stats import Stats

__all__ = ["INIT_MODES", "init_layers", "layer_shapes"]

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


def init_layers(
    stats: Stats,
    depth: int,
    width: int,
    delta: float,
    mode: Literal["aligned", "random"] = "aligned",
    seed: int = 0,
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

    Returns
    -------
    list of ndarray
    """
    if mode not in INIT_MODES:
        raise ValueError(f"init must be one of {INIT_MODES}, got {mode!r}")
    if not np.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    shapes = layer_shapes(stats.d, stats.p, depth, width)
    a0 = float(np.exp(-delta))
    if mode == "random":
        rng = np.random.default_rng(seed)
        return [a0 * rng.standard_normal(shape) / np.sqrt(max(shape)) for shape in shapes]

    m = stats.m
    if depth == 1:
        r = min(width, m)
        return [a0 * stats.U[:, :r] @ stats.V[:, :r].T]
    r = min(width, m)
    first = np.zeros(shapes[0])
    first[:, :r] = a0 * stats.U[:, :r]
    last = np.zeros(shapes[-1])
    last[:r, :] = a0 * stats.V[:, :r].T
    middle = [a0 * np.eye(width) for _ in range(depth - 2)]
    return [first, *middle, last]
