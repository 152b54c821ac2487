"""Predictions of the theory for gradient descent on deep linear networks.

THEORY §4 (exact scalar GD of one component under aligned initialisation),
§6 (time rescaling τ_L and transition steps), §7 (Theorem 3's discrete
envelopes, Corollary 3's crossing bracket, separation of components) and §8
(sequential solutions against reduced-rank regression).

Conventions: a component has singular value ``s`` of Σxy, variance ``λ`` (the
diagonal of UᵀΣxU), target ``ρ = s/λ`` and initial value ``u0 = e^{-Lδ}``
(per-layer scale δ). Every function broadcasts over its scalar arguments, so
one call handles arrays of runs × components. Where a result does not apply
it is NaN, never an exception.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "crossing_bracket",
    "decay_envelope",
    "eigengap_condition",
    "first_crossing",
    "gd_component",
    "loss",
    "order_by_s_and_rrr",
    "predicted_transition_step",
    "rrr_loss",
    "separation",
    "tau",
    "tau_inverse",
    "theorem3_envelopes",
    "w_rrr",
    "w_seq",
]


def _floats(*arrays: ArrayLike) -> list[NDArray[np.float64]]:
    return np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))


def _inv_one_plus_exp(x: NDArray) -> NDArray:
    """``1 / (1 + e^x)`` without overflow for any x (including ±inf)."""
    return np.exp(-np.logaddexp(0.0, x))


def _log_y0(s: NDArray, lam: NDArray, u0: NDArray) -> NDArray:
    """``log(ρ/u0 - 1)`` computed as ``log(ρ - u0) - log(u0)``: safe for tiny u0."""
    rho = s / lam
    return np.log(rho - u0) - np.log(u0)


def tau(depth: ArrayLike, delta: ArrayLike) -> NDArray[np.float64]:
    """Time rescaling τ_L(δ) under which components become step functions (§6).

    Parameters
    ----------
    depth : array_like of int
        Depth L.
    delta : array_like
        Per-layer initialisation scale δ (``u_i(0) = e^{-Lδ}``).

    Returns
    -------
    ndarray
        ``τ_2(δ) = δ``, ``τ_L(δ) = e^{(L-2)δ}/(L-2)`` for L ≥ 3, NaN for L = 1
        (the linear model has no phase transition, no rescaling gives a step).
    """
    depth, delta = _floats(depth, delta)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        deep = np.exp((depth - 2) * delta) / (depth - 2)
    return np.where(depth == 2, delta, np.where(depth >= 3, deep, np.nan))


def tau_inverse(depth: ArrayLike, tau_: ArrayLike) -> NDArray[np.float64]:
    """The per-layer δ at which ``τ_L(δ)`` equals ``tau_`` (§6): the inverse of :func:`tau`.

    Parameters
    ----------
    depth : array_like of int
        Depth L.
    tau_ : array_like
        A time scale τ > 0, e.g. ``τ_2(δ_2) = δ_2`` to find the depth-L analogue
        of a depth-2 init scale.

    Returns
    -------
    ndarray
        ``δ = τ`` for L = 2, ``δ = log((L-2)τ)/(L-2)`` for L ≥ 3 (negative when
        ``(L-2)τ < 1``: every δ ≥ 0 has a larger τ_L), NaN for L = 1 and τ ≤ 0.
    """
    depth, tau_ = _floats(depth, tau_)
    with np.errstate(divide="ignore", invalid="ignore"):
        deep = np.log((depth - 2) * tau_) / (depth - 2)
    out = np.where(depth == 2, tau_, np.where(depth >= 3, deep, np.nan))
    return np.where(tau_ > 0, out, np.nan)


def predicted_transition_step(
    depth: ArrayLike, delta: ArrayLike, eta: ArrayLike, s: ArrayLike
) -> NDArray[np.float64]:
    """GD step near which a component is learned: ``τ_L(δ) / (η s)`` (§6).

    Parameters
    ----------
    depth : array_like of int
        Depth L.
    delta, eta, s : array_like
        Initialisation scale δ, step size η, singular value s.

    Returns
    -------
    ndarray
        The predicted step; NaN where ``s ≤ 0`` or L = 1.
    """
    depth, delta, eta, s = _floats(depth, delta, eta, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = tau(depth, delta) / (eta * s)
    return np.where(s > 0, step, np.nan)


def gd_component(
    s: ArrayLike,
    lam: ArrayLike,
    depth: ArrayLike,
    eta: ArrayLike,
    delta: ArrayLike,
    steps: int,
) -> NDArray[np.float64]:
    """Exact gradient-descent trajectory of one decoupled component (§4).

    Iterates ``a(t+1) = a(t) + η a^{L-1} (s - λ a^L)`` from ``a(0) = e^{-δ}``
    and returns ``u(t) = a(t)^L``: the product's singular value along the
    component under aligned initialisation and ε = 0. For L = 2 this is
    ``u(t+1) = u(t) (1 + η(s - λu(t)))²``.

    Parameters
    ----------
    s, lam : array_like
        Singular value of Σxy and variance of the component.
    depth : array_like of int
        Depth L ≥ 1.
    eta : array_like
        Step size η.
    delta : array_like
        Per-layer initialisation scale δ.
    steps : int
        Number of steps.

    Returns
    -------
    ndarray
        Shape ``(steps + 1, *broadcast shape)``. Divergent runs (large ηs)
        overflow to inf or NaN silently.
    """
    s, lam, depth, eta, delta = _floats(s, lam, depth, eta, delta)
    a = np.exp(-delta)
    out = np.empty((steps + 1, *a.shape))
    with np.errstate(over="ignore", invalid="ignore"):
        a_pow = a ** (depth - 1)
        out[0] = a_pow * a
        for t in range(steps):
            a = a + eta * a_pow * (s - lam * out[t])
            a_pow = a ** (depth - 1)
            out[t + 1] = a_pow * a
    return out


def theorem3_envelopes(
    t: ArrayLike, s: ArrayLike, lam: ArrayLike, u0: ArrayLike, eta: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Theorem 3's lower and upper envelopes of a depth-2 GD component (§7).

    With ``ρ = s/λ``, ``y(t) = ρ/u(t) - 1``:
    ``y(0)(1 - 2ηs)^t ≤ y(t) ≤ y(0)(1 + ηs)^{-2t}``, i.e.
    ``ρ / (1 + y(0)(1+ηs)^{-2t}) ≤ u(t) ≤ ρ / (1 + y(0)(1-2ηs)^t)``.

    Parameters
    ----------
    t : array_like
        Step t ≥ 0.
    s, lam : array_like
        Singular value and variance of the component.
    u0 : array_like
        Initial value ``u(0)`` (``e^{-2δ}`` for the aligned initialisation).
    eta : array_like
        Step size η.

    Returns
    -------
    lower, upper : ndarray
        The envelopes, computed in log space (no overflow for huge t or tiny
        u0). NaN where the theorem does not apply: ``s ≤ 0``, ``λ ≤ 0``,
        ``u0 ≤ 0``, ``u0 ≥ ρ``, ``η ≤ 0``, ``ηs > 1/2`` or ``t < 0``.
    """
    # Not broadcast up front: what does not depend on t is computed once per component
    # (a sweep evaluates the envelopes at every step of every run).
    t, s, lam, u0, eta = (np.asarray(a, dtype=float) for a in (t, s, lam, u0, eta))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = s / lam
        log_y0 = _log_y0(s, lam, u0)
        log_y_low = log_y0 - 2.0 * t * np.log1p(eta * s)
        # At ηs = 1/2 the rate is 0: y(t) ≥ 0 only, and 0·log(0) must be 0 at t = 0.
        log_y_high = log_y0 + np.where(t == 0, 0.0, t * np.log1p(-2.0 * eta * s))
        lower = rho * _inv_one_plus_exp(log_y_low)
        upper = rho * _inv_one_plus_exp(log_y_high)
    ok = (s > 0) & (lam > 0) & (u0 > 0) & (u0 < rho) & (eta > 0) & (eta * s <= 0.5) & (t >= 0)
    return np.where(ok, lower, np.nan), np.where(ok, upper, np.nan)


def decay_envelope(
    t: ArrayLike, lam: ArrayLike, u0: ArrayLike, eta: ArrayLike
) -> NDArray[np.float64]:
    """Upper envelope of a depth-2 GD component with ``s = 0`` (§7).

    ``u(t+1) = u(t)(1 - ηλu(t))²`` gives ``1/u(t+1) ≥ 1/u(t) + 2ηλ`` while
    ``ηλu ≤ 1``, hence ``u(t) ≤ u0 / (1 + 2ηλ u0 t)``.

    Parameters
    ----------
    t : array_like
        Step t ≥ 0.
    lam, u0, eta : array_like
        Variance, initial value and step size.

    Returns
    -------
    ndarray
        The envelope; NaN unless ``λ ≥ 0``, ``u0 > 0``, ``η > 0``,
        ``ηλu0 ≤ 1`` and ``t ≥ 0``.
    """
    t, lam, u0, eta = _floats(t, lam, u0, eta)
    bound = u0 / (1.0 + 2.0 * eta * lam * u0 * t)
    ok = (lam >= 0) & (u0 > 0) & (eta > 0) & (eta * lam * u0 <= 1) & (t >= 0)
    return np.where(ok, bound, np.nan)


def crossing_bracket(
    s: ArrayLike, lam: ArrayLike, u0: ArrayLike, eta: ArrayLike, f: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Corollary 3's bracket ``t⁻ ≤ t(f) ≤ t⁺`` of the first step with ``u ≥ f·ρ`` (§7).

    With ``c = log(y(0) f/(1-f))``: ``t⁻ = c / (-log(1 - 2ηs))`` and
    ``t⁺ = ⌈c / (2 log(1 + ηs))⌉`` (depth 2, aligned init, ε = 0).

    Parameters
    ----------
    s, lam : array_like
        Singular value and variance of the component.
    u0 : array_like
        Initial value ``u(0)``.
    eta : array_like
        Step size η.
    f : array_like
        Fraction of the target, ``0 < f < 1``.

    Returns
    -------
    t_minus, t_plus : ndarray
        The bracket. ``t⁻`` is the real-valued bound of the corollary: the
        crossing step is an integer, so ``⌈t⁻⌉`` is a valid (tighter) lower bound
        too; ``t⁺`` is an integer-valued float. Both are 0 where
        ``u0 ≥ f·ρ`` (the crossing is step 0). NaN where the corollary does not
        apply: ``s ≤ 0``, ``λ ≤ 0``, ``u0 ≤ 0``, ``η ≤ 0``, ``ηs > 1/2`` or f
        outside (0, 1). At ``ηs = 1/2`` the lower bound degenerates to 0.
    """
    s, lam, u0, eta, f = _floats(s, lam, u0, eta, f)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = _log_y0(s, lam, u0) + np.log(f) - np.log1p(-f)
        t_minus = c / -np.log1p(-2.0 * eta * s)
        t_plus = np.ceil(c / (2.0 * np.log1p(eta * s)))
        crossed = u0 >= f * (s / lam)
    ok = (s > 0) & (lam > 0) & (u0 > 0) & (eta > 0) & (eta * s <= 0.5) & (f > 0) & (f < 1)
    t_minus = np.where(ok, np.where(crossed, 0.0, t_minus), np.nan)
    t_plus = np.where(ok, np.where(crossed, 0.0, t_plus), np.nan)
    return t_minus, t_plus


def first_crossing(u: ArrayLike, rho: ArrayLike, f: ArrayLike, axis: int = 0) -> NDArray[np.int64]:
    """First step at which a trajectory reaches ``f·ρ``.

    Parameters
    ----------
    u : array_like
        Trajectories, steps along ``axis``.
    rho : array_like
        Targets, broadcastable to u's shape without ``axis``.
    f : array_like
        Fractions, any shape.
    axis : int, optional
        The step axis of u.

    Returns
    -------
    ndarray of int
        Shape ``(*f.shape, *others)`` where ``others`` is u's shape without
        ``axis``: the first index with ``u ≥ f·ρ``, or -1 if never. NaN steps
        (diverged runs) never count as a crossing; ``+inf`` does. For one
        fraction per trajectory pass ``rho=f * rho`` and ``f=1``.
    """
    u = np.moveaxis(np.asarray(u, dtype=float), axis, 0)
    f = np.asarray(f, dtype=float)
    rho = np.broadcast_to(np.asarray(rho, dtype=float), u.shape[1:])
    # The running maximum is non-decreasing, so "not yet reached" is a prefix:
    # its length is the first crossing.
    running = np.fmax.accumulate(np.where(np.isnan(u), -np.inf, u), axis=0)
    out = np.empty(f.shape + u.shape[1:], dtype=np.int64)
    for index in np.ndindex(f.shape):
        pending = np.count_nonzero(~(running >= f[index] * rho), axis=0)
        out[index] = np.where(pending == u.shape[0], -1, pending)
    return out


def separation(
    s: ArrayLike, lam: ArrayLike, u0: ArrayLike, eta: ArrayLike, f: ArrayLike
) -> NDArray[np.bool_]:
    """Whether Corollary 3 guarantees that adjacent components are learned apart (§7).

    For components sorted by decreasing s along the last axis, pair
    ``(i, i+1)`` is separated when ``t_i⁺(1-f) < t_{i+1}⁻(f)``: component i is
    at least ``1 - f`` learned before component i+1 reaches f.

    Parameters
    ----------
    s, lam, u0, eta : array_like
        Component parameters, broadcast together; the last axis indexes
        components (use ``eta[..., None]`` for one step size per run).
    f : array_like
        Fraction, ``0 < f < 1/2`` for a meaningful statement; broadcast against
        the pairs ``(..., n-1)``.

    Returns
    -------
    ndarray of bool
        Shape ``(..., n-1)``; False where the bracket does not apply.
    """
    s, lam, u0, eta = _floats(s, lam, u0, eta)
    f = np.asarray(f, dtype=float)
    _, t_plus = crossing_bracket(s[..., :-1], lam[..., :-1], u0[..., :-1], eta[..., :-1], 1 - f)
    t_minus, _ = crossing_bracket(s[..., 1:], lam[..., 1:], u0[..., 1:], eta[..., 1:], f)
    return t_plus < t_minus


def eigengap_condition(
    s: ArrayLike, eta: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Asymptotic separation condition on the relative eigen-gaps (§7).

    For ``y(0)`` large the bracket of Corollary 3 separates components i and
    i+1 when, to first order in ηs, ``(s_i - s_{i+1})/s_i > 1.5 η s_i``: the
    step size must be smaller than the gaps.

    Parameters
    ----------
    s : array_like
        Singular values sorted in decreasing order along the last axis.
    eta : array_like
        Step size, broadcast against the pairs ``(..., n-1)``.

    Returns
    -------
    ok : ndarray of bool
        ``margin > 0``, shape ``(..., n-1)``.
    margin : ndarray
        ``(s_i - s_{i+1})/s_i - 1.5 η s_i``.
    """
    s = np.asarray(s, dtype=float)
    head, tail = s[..., :-1], s[..., 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = (head - tail) / head - 1.5 * np.asarray(eta, dtype=float) * head
    return margin > 0, margin


def w_seq(u: ArrayLike, v: ArrayLike, rho: ArrayLike, k: int) -> NDArray[np.float64]:
    """Sequential k-component solution ``U diag(ρ_1, …, ρ_k, 0, …) Vᵀ`` (§7).

    Parameters
    ----------
    u : array_like
        Left singular vectors of Σxy, (d, m) with m ≥ k (e.g. the full d×d U).
    v : array_like
        Right singular vectors, (p, m') with m' ≥ k (e.g. the full p×p V).
    rho : array_like
        Targets ``ρ_i = s_i/λ_i`` in the order of the columns, length ≥ k.
    k : int
        Number of learned components.

    Returns
    -------
    ndarray
        ``W_k^seq``, (d, p).
    """
    u, v, rho = (np.asarray(a, dtype=float) for a in (u, v, rho))
    return (u[:, :k] * rho[:k]) @ v[:, :k].T


def w_rrr(sigma_x: ArrayLike, sigma_xy: ArrayLike, k: int) -> NDArray[np.float64]:
    """Reduced-rank regression ``argmin_{rank W ≤ k} ℒ(W)`` (§8, Reinsel & Velu Thm 2.2).

    ``W_k = Σx⁺ Σxy P_k``, with ``P_k`` the projector on the top-k eigenvectors
    of ``Σxyᵀ Σx⁺ Σxy``. With singular Σx this is the minimum-norm minimiser,
    provided Σxy's columns lie in the range of Σx (true for Σxy = XᵀY/n;
    otherwise the loss is unbounded below).

    Parameters
    ----------
    sigma_x : array_like
        Σx, (d, d) symmetric positive semi-definite.
    sigma_xy : array_like
        Σxy, (d, p).
    k : int
        Maximal rank (k ≥ p gives ordinary least squares).

    Returns
    -------
    ndarray
        ``W_k^RRR``, (d, p). Ties in the eigenvalues make it non-unique.
    """
    sigma_xy = np.asarray(sigma_xy, dtype=float)
    ols = np.linalg.pinv(np.asarray(sigma_x, dtype=float), hermitian=True) @ sigma_xy
    gram = sigma_xy.T @ ols
    _, vecs = np.linalg.eigh((gram + gram.T) / 2)  # eigenvalues in ascending order
    top = vecs[:, vecs.shape[1] - k :] if k > 0 else vecs[:, :0]
    return ols @ top @ top.T


def loss(
    w: ArrayLike, sigma_x: ArrayLike, sigma_xy: ArrayLike, yy: ArrayLike
) -> NDArray[np.float64]:
    """Least-squares loss ``½ tr(WᵀΣxW) - tr(WᵀΣxy) + ½ yy`` (§1).

    Parameters
    ----------
    w : array_like
        Product W, (..., d, p) (a stack of matrices is allowed).
    sigma_x, sigma_xy : array_like
        Σx (d, d) and Σxy (d, p).
    yy : array_like
        ``tr(YᵀY)/n``.

    Returns
    -------
    ndarray
        The loss, shape ``w.shape[:-2]``.
    """
    w = np.asarray(w, dtype=float)
    # Σx W by matrix products (BLAS), then the trace: d²p flops per matrix W.
    quad = np.einsum("...ij,...ij->...", w, np.asarray(sigma_x, dtype=float) @ w)
    lin = np.einsum("...ij,ij->...", w, np.asarray(sigma_xy, dtype=float))
    return 0.5 * quad - lin + 0.5 * np.asarray(yy, dtype=float)


def rrr_loss(sigma_x: ArrayLike, sigma_xy: ArrayLike, yy: ArrayLike, k: int) -> float:
    """Loss at the reduced-rank regression solution ``W_k^RRR`` (§8).

    Parameters
    ----------
    sigma_x, sigma_xy : array_like
        Σx (d, d) and Σxy (d, p).
    yy : array_like
        ``tr(YᵀY)/n``.
    k : int
        Maximal rank.

    Returns
    -------
    float
        ``min_{rank W ≤ k} ℒ(W)``.
    """
    return float(loss(w_rrr(sigma_x, sigma_xy, k), sigma_x, sigma_xy, yy))


def order_by_s_and_rrr(
    s: ArrayLike, lam: ArrayLike
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_]]:
    """Learning order of gradient dynamics against the selection order of RRR (§8).

    Gradient dynamics learns components by decreasing ``s_i``; under ε = 0
    rank-k RRR keeps the k largest ``s_i²/λ_i``. ``W_k^seq = W_k^RRR`` exactly
    when the two top-k sets agree.

    Parameters
    ----------
    s, lam : array_like
        Singular values and variances, components along the last axis; a
        component of zero variance (then ``s = 0``) scores ``s²/λ = 0``.

    Returns
    -------
    order_s : ndarray of int
        Component indices by decreasing s (stable for ties).
    order_rrr : ndarray of int
        Component indices by decreasing ``s²/λ``.
    agree : ndarray of bool
        ``agree[..., k-1]`` is True when the top-k sets coincide, k = 1 … n.
    """
    s, lam = _floats(s, lam)
    order_s = np.argsort(-s, axis=-1, kind="stable")
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(lam > 0, s**2 / lam, 0.0)
    order_rrr = np.argsort(-score, axis=-1, kind="stable")
    rank_rrr = np.argsort(order_rrr, axis=-1)
    # The first k by s are the top k by s²/λ iff their largest RRR rank is k-1.
    worst_rank = np.maximum.accumulate(np.take_along_axis(rank_rrr, order_s, -1), axis=-1)
    agree = worst_rank == np.arange(s.shape[-1])
    return order_s, order_rrr, agree
