"""Exact gradient descent on deep linear networks, through the eigenbasis of Σx.

GD on ``ℒ(W) = ½tr(WᵀΣxW) − tr(WᵀΣxy) + ½tr(YᵀY)/n`` is equivariant under an
orthogonal change of input basis (THEORY §2): with ``Σx = Q diag(μ) Qᵀ`` the
first layer ``W̃_1 = QᵀW_1`` follows GD on ``(diag(μ), QᵀΣxy)``, where the
gradient of the product is an element-wise scaling. This is exact, not an
approximation, and it is checked against :func:`naive_gd` (full data) in the tests.

A batch of runs that share depth and width (different η, δ, seeds, inits) is
advanced together with batched matmuls; each run stops on its own:

* **converged** when the excess loss over the best loss reachable at this width
  (reduced-rank regression of rank ``min(r, rank Σxy)``, THEORY §8) falls below
  ``tol`` times its initial value;
* **diverged** when the loss is not finite or exceeds ``DIVERGENCE_FACTOR``
  times ``max(ℒ(0), tr(YᵀY)/n, 1)``; the step is recorded, nothing is raised;
* **max_steps** otherwise.

Every step records the loss and the component coordinates ``u_i(t) = U_iᵀ W V_i``
(for exact crossing steps and step-by-step bound checks); at the logged steps
the kernel also records singular values, norms and distances to fixed targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lindyn.stats import Stats

__all__ = [
    "DIVERGENCE_FACTOR",
    "EigenProblem",
    "GDResult",
    "batch_gradients",
    "batch_product",
    "gd_batch",
    "log_schedule",
    "naive_gd",
]

DIVERGENCE_FACTOR = 1e8
# Steps advanced between evaluations of the observables and stopping rules.
BLOCK = 64


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
        )

    def loss(self, W: np.ndarray) -> np.ndarray:
        """Loss of products ``W`` (…, d, p) given in the working basis."""
        return (
            0.5 * np.einsum("j,...jk,...jk->...", self.mu, W, W)
            - np.einsum("...jk,jk->...", W, self.S)
            + 0.5 * self.yy
        )


@dataclass
class GDResult:
    """Trajectories of a batch of GD runs (leading axis of every array: run).

    Attributes
    ----------
    u : (R, T+1, c) array
        ``u_i(t)`` at every step ``t = 0..max_steps`` (NaN after a run stops).
    loss : (R, T+1) array
        Loss at every step (NaN after a run stops).
    log_steps : (S,) int array
        The logging schedule.
    singular_values : (R, S, q) array
        Singular values of ``W(t)`` at the logged steps, ``q = min(d, p)``.
    distances : (R, S, K) array
        ``‖W(t) − target_k‖_F`` at the logged steps.
    recon_error : (R, S) array or None
        Clean-signal reconstruction error ``‖X_clean − XW‖²/n`` at the logged steps.
    status : list of str
        ``converged``, ``max_steps`` or ``diverged`` for each run.
    stop_step : (R,) int array
        The last step computed (the diverging step for diverged runs).
    final_layers : list of lists of arrays
        Each run's layers in the original input basis: at ``max_steps``, or
        for a run stopped earlier at the end of the block of :data:`BLOCK`
        steps in which it stopped (its trajectory is cut at ``stop_step``).
    """

    u: np.ndarray
    loss: np.ndarray
    log_steps: np.ndarray
    singular_values: np.ndarray
    distances: np.ndarray
    recon_error: np.ndarray | None
    status: list[str]
    stop_step: np.ndarray
    final_layers: list[list[np.ndarray]]


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


def gd_batch(
    problem: EigenProblem,
    layers0: Sequence[Sequence[np.ndarray]],
    eta: Sequence[float],
    max_steps: int,
    log_steps: np.ndarray,
    loss_target: float | None,
    tol: float = 1e-8,
) -> GDResult:
    """Run gradient descent for a batch of networks of the same shape.

    Parameters
    ----------
    problem : EigenProblem
        The dataset in the eigenbasis of Σx.
    layers0 : sequence of R lists of arrays
        Initial layers of each run, in the original input basis.
    eta : sequence of R floats
        Step size of each run.
    max_steps : int
        Step budget.
    log_steps : int array
        Steps at which to record the full observables (see :func:`log_schedule`).
    loss_target : float or None
        Best loss reachable at this width (convergence reference); None runs
        every run to ``max_steps`` unless it diverges.
    tol : float
        Relative excess-loss tolerance of the convergence criterion.

    Returns
    -------
    GDResult
    """
    R = len(layers0)
    eta = np.asarray(eta, dtype=np.float64).reshape(R)
    depth = len(layers0[0])
    # Batched layers in the working basis: W̃_1 = QᵀW_1.
    layers = [
        np.stack([problem.Q.T @ run[0] if i == 0 else run[i] for run in layers0]).astype(np.float64)
        for i in range(depth)
    ]
    c = problem.U_obs.shape[1]
    d, p = problem.S.shape
    q = min(d, p)
    K = problem.targets.shape[0]
    log_steps = np.asarray(log_steps, dtype=np.int64)

    u = np.full((R, max_steps + 1, c), np.nan)
    loss = np.full((R, max_steps + 1), np.nan)
    sv = np.full((R, len(log_steps), q), np.nan)
    dist = np.full((R, len(log_steps), K), np.nan)
    recon = None if problem.clean_cross is None else np.full((R, len(log_steps)), np.nan)
    status = ["max_steps"] * R
    stop_step = np.full(R, max_steps, dtype=np.int64)
    final: list[list[np.ndarray] | None] = [None] * R

    mu = problem.mu[:, None]
    active = np.arange(R)
    initial_excess = blowup = None
    start = 0
    while active.size:
        # Advance a block of steps, keeping each step's product; the observables
        # and stopping rules are then evaluated on the whole block at once.
        stop = min(start + BLOCK, max_steps + 1)
        products = np.empty((stop - start, active.size, d, p))
        step = eta[active][:, None, None]
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(start, stop):
                W = products[t - start]
                if depth == 1:
                    np.copyto(W, layers[0])
                else:
                    np.matmul(batch_product(layers[:-1]), layers[-1], out=W)
                if t == max_steps:
                    break
                G = mu * W
                G -= problem.S
                grads = batch_gradients(layers, G)
                for layer, grad in zip(layers, grads, strict=True):
                    grad *= step
                    layer -= grad
            block_loss = (
                0.5 * np.einsum("j,trjk,trjk->tr", problem.mu, products, products)
                - np.einsum("trjk,jk->tr", products, problem.S)
                + 0.5 * problem.yy
            )
            block_u = np.einsum("trik,ki->tri", problem.U_obs.T @ products, problem.V_obs)
        if initial_excess is None:
            first = block_loss[0]
            reference = np.inf if loss_target is None else loss_target
            initial_excess = np.maximum(first - reference, np.finfo(float).tiny)
            blowup = DIVERGENCE_FACTOR * np.maximum(np.maximum(first, problem.yy), 1.0)
        bad = ~np.isfinite(block_loss) | (block_loss > blowup[active])
        if loss_target is None:
            good = np.zeros_like(bad)
        else:
            good = (block_loss - loss_target) <= tol * initial_excess[active]
        done_at = np.full(active.size, -1)
        for j in range(active.size):
            hits = np.flatnonzero(bad[:, j] | good[:, j])
            if hits.size:
                done_at[j] = hits[0]
                status[active[j]] = "diverged" if bad[hits[0], j] else "converged"
            elif stop == max_steps + 1:
                done_at[j] = stop - start - 1
        ends = np.where(done_at >= 0, start + done_at, stop - 1)
        for j, run in enumerate(active):
            keep = slice(start, ends[j] + 1)
            loss[run, keep] = block_loss[: ends[j] + 1 - start, j]
            u[run, keep] = block_u[: ends[j] + 1 - start, j]
        in_block = np.flatnonzero((log_steps >= start) & (log_steps < stop))
        for i in in_block:
            local = log_steps[i] - start
            rows = np.flatnonzero(ends >= log_steps[i])
            W = products[local, rows]
            if rows.size == 0 or not np.all(np.isfinite(W)):
                continue
            sv[active[rows], i] = np.linalg.svd(W, compute_uv=False)
            if K:
                diff = W[:, None] - problem.targets[None]
                dist[active[rows], i] = np.sqrt(np.einsum("rkjl,rkjl->rk", diff, diff))
            if recon is not None:
                recon[active[rows], i] = (
                    problem.cc
                    - 2 * np.einsum("jk,rjk->r", problem.clean_cross, W)
                    + np.einsum("j,rjk,rjk->r", problem.mu, W, W)
                )
        finished = done_at >= 0
        for j in np.flatnonzero(finished):
            run = active[j]
            stop_step[run] = ends[j]
            final[run] = [
                (problem.Q @ layer[j] if i == 0 else layer[j].copy())
                for i, layer in enumerate(layers)
            ]
        active = active[~finished]
        layers = [layer[~finished] for layer in layers]
        start = stop

    return GDResult(
        u=u,
        loss=loss,
        log_steps=np.asarray(log_steps),
        singular_values=sv,
        distances=dist,
        recon_error=recon,
        status=status,
        stop_step=stop_step,
        final_layers=final,  # type: ignore[arg-type]
    )


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
