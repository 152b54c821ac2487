"""Exact gradient descent on deep linear networks, through the eigenbasis of Σx.

GD on ``ℒ(W) = ½tr(WᵀΣxW) − tr(WᵀΣxy) + ½tr(YᵀY)/n`` is equivariant under an
orthogonal change of input basis (THEORY §2): with ``Σx = Q diag(μ) Qᵀ`` the
first layer ``W̃_1 = QᵀW_1`` follows GD on ``(diag(μ), QᵀΣxy)``, where the
gradient of the product is an element-wise scaling. This is exact, not an
approximation. This module holds what the engines (:mod:`lindyn.engines`,
:mod:`lindyn.fastgd`) and the sweeps (:mod:`lindyn.sweeps`) share:

* :class:`EigenProblem`, a dataset in that working basis with the observables
  to track (loss, components ``u_i = U_iᵀ W V_i``, distances to fixed targets);
* :func:`batch_product` and :func:`batch_gradients`, the product and the layer
  gradients of batched layers (the numpy engine's step);
* :func:`log_schedule`, the steps at which a sweep logs its full observables;
* :data:`DIVERGENCE_FACTOR`, the scale of the divergence rule (stopping rules:
  :mod:`lindyn.sweeps`);
* :func:`naive_gd`, the reference every fast path is tested against: plain
  full-data GD on ``X, Y`` in the original basis, every layer, every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lindyn.stats import HeldOut, Stats

__all__ = [
    "DIVERGENCE_FACTOR",
    "EigenProblem",
    "batch_gradients",
    "batch_product",
    "log_schedule",
    "naive_gd",
]

DIVERGENCE_FACTOR = 1e8
"""A run diverges when its loss exceeds this times ``max(ℒ(0), tr(YᵀY)/n, 1)``."""


def log_schedule(max_steps: int, per_decade: int = 20) -> np.ndarray:
    """Logged steps: 0, 1, then ``per_decade`` log-spaced steps a decade, and ``max_steps``.

    Parameters
    ----------
    max_steps : int
        Step budget (last logged step).
    per_decade : int
        Logging density.

    Returns
    -------
    ndarray of int64, sorted and unique
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if per_decade < 1:
        raise ValueError(f"log_density must be >= 1, got {per_decade}")
    decades = np.log10(max_steps)
    num = max(int(np.ceil(decades * per_decade)) + 1, 2)
    steps = np.round(np.logspace(0, decades, num)).astype(np.int64)
    return np.unique(np.concatenate([[0, 1], steps, [max_steps]]))


@dataclass(frozen=True)
class EigenProblem:
    """A least-squares problem in the eigenbasis of Σx, with its observables.

    Attributes
    ----------
    mu : (d,) array
        Eigenvalues of Σx.
    Q : (d, d) array
        Eigenvectors of Σx (rotation into the working basis).
    S : (d, p) array
        ``QᵀΣxy``.
    yy : float
        ``tr(YᵀY)/n``.
    U_obs : (d, c) array
        ``QᵀU_{:, :c}``, input side of the tracked components.
    V_obs : (p, c) array
        ``V_{:, :c}``, output side of the tracked components.
    targets : (K, d, p) array
        Fixed matrices (in the working basis) whose distance to ``W(t)`` is logged.
    clean_cross : (d, d) array or None
        ``QᵀXᵀX_clean/n`` for the clean-signal reconstruction error.
    cc : float or None
        ``tr(X_cleanᵀX_clean)/n``.
    held_out : HeldOut or None
        The test set's statistics in the working basis (:meth:`test_loss`).
    """

    mu: np.ndarray
    Q: np.ndarray
    S: np.ndarray
    yy: float
    U_obs: np.ndarray
    V_obs: np.ndarray
    targets: np.ndarray
    clean_cross: np.ndarray | None = None
    cc: float | None = None
    held_out: HeldOut | None = None

    @classmethod
    def from_stats(
        cls,
        stats: Stats,
        components: int | None = None,
        targets: Sequence[np.ndarray] = (),
    ) -> EigenProblem:
        """Build the working-basis problem from a dataset's statistics.

        Parameters
        ----------
        stats : Stats
        components : int, optional
            How many components to track (default all ``m``).
        targets : sequence of (d, p) arrays
            Matrices in the original basis to log distances to.
        """
        c = stats.m if components is None else min(components, stats.m)
        Q = stats.Q
        d, p = stats.d, stats.p
        stacked = np.stack([Q.T @ t for t in targets]) if targets else np.zeros((0, d, p))
        clean = None if stats.sigma_xc is None else Q.T @ stats.sigma_xc
        return cls(
            mu=stats.mu,
            Q=Q,
            S=Q.T @ stats.sigma_xy,
            yy=stats.yy,
            U_obs=Q.T @ stats.U[:, :c],
            V_obs=stats.V[:, :c],
            targets=stacked,
            clean_cross=clean,
            cc=stats.cc,
            held_out=None if stats.held_out is None else stats.held_out.rotated(Q),
        )

    def loss(self, W: np.ndarray) -> np.ndarray:
        """Loss of products ``W`` (…, d, p) given in the working basis."""
        return (
            0.5 * np.einsum("j,...jk,...jk->...", self.mu, W, W)
            - np.einsum("...jk,jk->...", W, self.S)
            + 0.5 * self.yy
        )


def batch_product(layers: list[np.ndarray]) -> np.ndarray:
    """The product ``W_1⋯W_L`` of (batched) layers."""
    W = layers[0]
    for layer in layers[1:]:
        W = W @ layer
    return W


def batch_gradients(layers: list[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
    """Layer gradients ``(W_1⋯W_{l−1})ᵀ G (W_{l+1}⋯W_L)ᵀ`` for batched layers."""
    depth = len(layers)
    if depth == 1:
        return [G]
    # suffix[i] = W_{i+1}⋯W_L (0-based i), only the small r×p products
    suffix = [None] * (depth + 1)
    suffix[depth - 1] = layers[-1]
    for i in range(depth - 2, 0, -1):
        suffix[i] = layers[i] @ suffix[i + 1]
    grads = [G @ np.swapaxes(suffix[1], -1, -2)]
    left = np.swapaxes(layers[0], -1, -2) @ G  # (W_1)ᵀ G, r×p
    for i in range(1, depth):
        if i == depth - 1:
            grads.append(left)
        else:
            grads.append(left @ np.swapaxes(suffix[i + 1], -1, -2))
            left = np.swapaxes(layers[i], -1, -2) @ left
    return grads


def naive_gd(
    X: np.ndarray,
    Y: np.ndarray,
    layers0: Sequence[np.ndarray],
    eta: float,
    steps: int,
) -> list[list[np.ndarray]]:
    """Reference: plain full-data gradient descent, every layer, every step.

    Parameters
    ----------
    X, Y : arrays (n, d), (n, p)
    layers0 : list of arrays
        Initial layers.
    eta : float
        Step size.
    steps : int
        Number of steps.

    Returns
    -------
    list of lists of arrays
        The layers at steps ``0..steps``.
    """
    n = X.shape[0]
    layers = [np.array(layer, dtype=np.float64) for layer in layers0]
    history = [[layer.copy() for layer in layers]]
    for _ in range(steps):
        W = batch_product(layers)
        G = X.T @ (X @ W - Y) / n
        grads = []
        for i in range(len(layers)):
            left = batch_product(layers[:i]) if i else None
            right = batch_product(layers[i + 1 :]) if i < len(layers) - 1 else None
            grad = G if left is None else left.T @ G
            grads.append(grad if right is None else grad @ right.T)
        layers = [layer - eta * grad for layer, grad in zip(layers, grads, strict=True)]
        history.append([layer.copy() for layer in layers])
    return history
