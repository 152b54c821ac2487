"""Gradient flow of deep linear networks: closed forms and a reference integrator.

THEORY §4-§5. Under aligned initialisation and ε = 0 each component of the
product follows the scalar flow ``du/dt = L u^(2-2/L) (s - λu)``, ``u(0) = u0``,
with target ``ρ = s/λ``. This module solves that flow exactly:

- L = 1 and L = 2 have explicit solutions;
- for L ≥ 3 the time integral has a closed form too (partial fractions over the
  L-th roots of unity, see `flow_time`), and `flow_component` inverts it by a
  Newton iteration that converges monotonically, vectorised over all arguments.

`flow_linear` is the exact matrix flow of the linear model (L = 1, any init) and
`flow_full` integrates the full matrix ODE of any depth with an ODE solver; it is
the reference the closed forms are tested against.

Step t of gradient descent corresponds to time ``η·t`` of the flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lindyn.theory import tau

__all__ = [
    "figure1_curves",
    "flow_component",
    "flow_crossing_time",
    "flow_full",
    "flow_linear",
    "flow_time",
]

_NEWTON_MAXITER = 50  # converges in ≤ 10 iterations for L ≤ 10 in practice
_EPS = np.finfo(float).eps
_FAR_LOG_W = np.log(4.0)  # series in 1/w beyond u = 4ρ: 4^{-30} is below rounding
_FAR_TERMS = 30


def _check_depth(depth: int) -> int:
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    return int(depth)


def _phi(t: NDArray, k: NDArray) -> NDArray:
    """``(1 - e^{-kt}) / k``, continuous at ``k = 0`` where it equals ``t``."""
    k_safe = np.where(k == 0, 1.0, k)
    return np.where(k == 0, t, -np.expm1(-k_safe * t) / k_safe)


# --------------------------------------------------------------------------
# Depth L >= 3, s > 0, λ > 0: work with w = u/ρ and the time unit C = ρ^{-α}/(L s),
# α = 1 - 2/L. Then t(w) = C · Δ(w; w0) with
#     Δ = ∫_{w0}^{w} dv / (v^{1+α} (1 - v)),
# and with p = w^{1/L} the integrand is L dp / (p^{L-1} (1 - p^L)) = L p^{1-L} dp
# + L p dp / (1 - p^L); the second term's partial fractions over the roots of
# unity ω_k have residues -ω_k², so
#     Δ = [-(L/(L-2)) p^{2-L} - Σ_k Re(ω_k² log(p - ω_k))]_{p0}^{p}.
# Everything below is written in lw = log w, which keeps full relative precision
# both for tiny initialisations (w0 ~ e^{-Lδ}) and next to the target (w -> 1).
# --------------------------------------------------------------------------


def _log_abs_one_minus_p(lw: NDArray, l1: NDArray, depth: int) -> NDArray:
    """``log|1 - p|``, ``p = w^{1/L}``, from ``lw = log w`` and ``l1 = log|1 - w|``.

    Written as ``l1 + log((1 - w^{1/L})/(1 - w))`` so that it stays exact when w
    rounds to 1 (lw underflows to 0) long after u has settled at ρ.
    """
    small = np.abs(lw) < 1e-10  # series to O(lw²); also covers lw underflowing to 0
    lw_safe = np.where(small, 1.0, lw)
    ratio = np.where(
        small,
        (1.0 + (1.0 / depth - 1.0) * lw / 2.0) / depth,
        np.expm1(lw_safe / depth) / np.expm1(lw_safe),
    )
    return l1 + np.log(ratio)


def _deep_delta(lw: NDArray, l1: NDArray, lw0: NDArray, l1_0: NDArray, depth: int) -> NDArray:
    """Δ(w; w0) above, in units of C, from ``lw = log w``, ``l1 = log|1 - w|`` (and at w0)."""
    alpha = (depth - 2) / depth
    # Far above the target (w ≥ 4, so w0 ≥ w too) the closed form's terms cancel to
    # a relative 1/w; there Δ = Σ_n (w^{-k} - w0^{-k})/k, k = 1 + α + n, instead.
    far = lw >= _FAR_LOG_W
    k = 1.0 + alpha + np.arange(_FAR_TERMS)
    lw_far = np.where(far, lw, _FAR_LOG_W)[..., None]
    gap = np.where(far, lw0 - lw, 0.0)[..., None]
    series = np.sum(-np.exp(-k * lw_far) * np.expm1(-k * gap) / k, axis=-1)
    power_term = np.exp(-alpha * lw0) / alpha * -np.expm1(-alpha * (lw - lw0))
    p0 = np.exp(lw0 / depth)
    dp = p0 * np.expm1((lw - lw0) / depth)
    # k = 0 (ω = 1): -log|(1 - p)/(1 - p0)| carries the divergence at the target.
    # As log1p while p is near p0 (no cancellation at small t), as a difference
    # of logs otherwise (exact even when p rounds to 1).
    ratio_m1 = dp / np.expm1(lw0 / depth)  # (1 - p)/(1 - p0) - 1
    root_one = np.where(
        np.abs(ratio_m1) < 0.5,
        -np.log1p(ratio_m1),
        _log_abs_one_minus_p(lw0, l1_0, depth) - _log_abs_one_minus_p(lw, l1, depth),
    )
    # k ≥ 1: -Re(ω² log1p(z)), z = (p - p0)/(p0 - ω), with an accurate complex log1p.
    theta = 2.0 * np.pi * np.arange(1, depth) / depth
    p0, dp = p0[..., None], dp[..., None]
    re_den, im_den = p0 - np.cos(theta), -np.sin(theta)
    den2 = re_den**2 + im_den**2
    x = dp * re_den / den2
    y = -dp * im_den / den2
    log_abs = 0.5 * np.log1p(x * (2.0 + x) + y**2)
    arg = np.arctan2(y, 1.0 + x)
    other_roots = -np.sum(np.cos(2 * theta) * log_abs - np.sin(2 * theta) * arg, axis=-1)
    return np.where(far, series, power_term + root_one + other_roots)


def _log1mexp(x: NDArray) -> NDArray:
    """``log(1 - e^{-x})`` for x > 0, accurate for small and large x."""
    return np.where(x < np.log(2.0), np.log(-np.expm1(-x)), np.log1p(-np.exp(-x)))


def _lw_of_xi(xi: NDArray, below: NDArray) -> NDArray:
    """Invert ``ξ = log w - log|1 - w|`` on the branch w < 1 (``below``) or w > 1.

    Above the target the map is an involution: ``lw = -log(1 - e^{-ξ})``.
    """
    lw_below = -np.logaddexp(0.0, -xi)
    lw_above = -_log1mexp(np.where(below, 1.0, xi))
    return np.where(below, lw_below, lw_above)


def _deep_solve(lw0: NDArray, tau_: NDArray, depth: int) -> NDArray:
    """Solve ``Δ(w; w0) = tau_`` for ``lw = log w`` (1-d, ``lw0 != 0``, finite tau_ ≥ 0).

    Newton's method in ξ = log w - log|1 - w|, where dΔ/dξ = w^{-α}. Δ(ξ) is
    concave for w < 1 and convex for w > 1, so after the first step the
    iterates approach the root monotonically from one side. For w0 < 1 the
    start is the tighter of two a-priori upper bounds on w, from
    dw/dτ ≤ w^{1+α} and dw/dτ ≤ 1 - w; for w0 > 1 it is w0.
    """
    alpha = (depth - 2) / depth
    below = lw0 < 0
    l1_0 = np.log(np.abs(np.expm1(lw0)))  # log|1 - w0|
    xi0 = np.where(below, lw0 - l1_0, -_log1mexp(np.where(below, 1.0, lw0)))
    arg = -alpha * tau_ * np.exp(alpha * lw0)
    lw_blowup = lw0 - np.log1p(arg) / alpha  # NaN past the blow-up: no bound
    xi_blowup = np.where(lw_blowup < 0, lw_blowup - np.log(-np.expm1(lw_blowup)), np.inf)
    # 1 - w ≥ (1 - w0) e^{-τ}, i.e. w ≤ w0 e^{-τ} + (1 - e^{-τ}), in logs.
    lw_relax = np.logaddexp(lw0 - tau_, np.log(-np.expm1(-tau_)))
    xi_relax = lw_relax - (l1_0 - tau_)
    xi = np.where(below, np.minimum(xi_blowup, xi_relax), xi0)

    active = np.arange(xi.size)
    for _ in range(_NEWTON_MAXITER):
        lw = _lw_of_xi(xi[active], below[active])
        delta = _deep_delta(lw, lw - xi[active], lw0[active], l1_0[active], depth)
        step = (tau_[active] - delta) * np.exp(alpha * lw)
        xi[active] += step
        # Stop at rounding level, relative in ξ or in the residual: far above the
        # target both ξ ≈ 1/w and τ are tiny, so absolute tolerances would stop early.
        done = (np.abs(step) <= 4 * _EPS * np.abs(xi[active])) | (
            np.abs(tau_[active] - delta) <= 16 * _EPS * tau_[active]
        )
        active = active[~done]
        if active.size == 0:
            break
    return _lw_of_xi(xi, below)


def _deep_component(
    t: NDArray, s: NDArray, lam: NDArray, depth: int, u0: NDArray, ok: NDArray
) -> NDArray:
    """`flow_component` for depth ≥ 3 on the valid entries ``ok`` (warnings silenced)."""
    alpha = (depth - 2) / depth
    beta = 2.0 - 2.0 / depth
    u = np.full(t.shape, np.nan)

    # s = 0: du/dt = -Lλ u^{1+β}, so u^{-β} grows linearly. This bounds u from
    # below for s > 0 and is u itself to rounding once ρ is negligible against it.
    decay = u0 * (1.0 + beta * depth * lam * t * u0**beta) ** (-1.0 / beta)
    negligible = ok & ((s == 0) | (s / lam <= _EPS * decay))
    u[negligible] = decay[negligible]

    # λ = 0 < s: du/dt = L s u^{1+α}, finite-time blow-up.
    m = ok & (lam == 0) & (s > 0)
    base = 1.0 - (depth - 2) * s[m] * t[m] * u0[m] ** alpha
    u[m] = np.where(base > 0, u0[m] * base ** (-1.0 / alpha), np.inf)

    m = ok & (s > 0) & (lam > 0) & ~negligible
    rho = s[m] / lam[m]
    lw0 = np.log(u0[m]) - np.log(rho)
    tau_ = t[m] * depth * s[m] * rho**alpha
    lw = np.zeros_like(lw0)  # w0 = 1 is stationary, tau_ = inf reaches the target
    solve = (lw0 != 0) & np.isfinite(tau_)
    lw[solve] = _deep_solve(lw0[solve], tau_[solve], depth)
    u[m] = rho * np.exp(lw)
    return u


def flow_component(
    t: ArrayLike, s: ArrayLike, lam: ArrayLike, depth: int, u0: ArrayLike
) -> NDArray[np.float64]:
    """Exact solution u(t) of the per-component gradient flow (THEORY §4-§5).

    Solves ``du/dt = L u^(2-2/L) (s - λu)``, ``u(0) = u0``: the singular value
    of the product along component (s, λ) under aligned initialisation and ε = 0.

    Parameters
    ----------
    t : array_like
        Flow time, ``t ≥ 0`` (GD step t corresponds to time ``η·t``).
    s, lam : array_like
        Singular value of Σxy and diagonal entry of UᵀΣxU for the component;
        ``s ≥ 0``, ``λ ≥ 0``.
    depth : int
        Depth L ≥ 1 (a scalar: the solution's form depends on it).
    u0 : array_like
        Initial value, ``e^{-Lδ}`` for the aligned initialisation of scale δ.
        Any real number for L = 1 (an affine ODE); ``u0 > 0`` for L ≥ 2.

    Returns
    -------
    ndarray
        u(t), broadcast over all array arguments; exactly u0 at t = 0 and never
        past ρ. NaN outside the domain (t < 0, s < 0, λ < 0, or u0 ≤ 0 for
        L ≥ 2); inf after a finite-time blow-up (λ = 0 < s, L ≥ 3).

    Notes
    -----
    L = 1: ``u = u0 e^{-λt} + s (1 - e^{-λt})/λ`` (``= ρ + (u0 - ρ) e^{-λt}``).
    L = 2: ``1/u = e^{-2st}/u0 + λ (1 - e^{-2st})/s``, i.e. THEORY's
    ``s e^{2st} / (λ(e^{2st} - 1) + s/u0)`` divided through by ``e^{2st}`` so that
    large t does not overflow; ``s = 0`` gives ``u0 / (1 + 2λ u0 t)``.
    L ≥ 3: inverse of the closed-form `flow_time`, by Newton's method to
    rounding accuracy; ``s = 0`` and ``λ = 0`` have explicit solutions.
    """
    depth = _check_depth(depth)
    t, s, lam, u0 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (t, s, lam, u0)))
    ok = (t >= 0) & (s >= 0) & (lam >= 0) & ((u0 > 0) | (depth == 1))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if depth == 1:
            u = u0 * np.exp(-lam * t) + s * _phi(t, lam)
        elif depth == 2:
            u = 1.0 / (np.exp(-2.0 * s * t) / u0 + 2.0 * lam * _phi(t, 2.0 * s))
        else:
            u = _deep_component(t, s, lam, depth, u0, ok)
        # ρ is a fixed point: the exact flow never crosses it, rounding must not either.
        rho = s / lam
        u = np.where((lam > 0) & ((u - rho) * (u0 - rho) < 0), rho, u)
    return np.where(ok, np.where(t == 0, u0, u), np.nan)


def flow_time(
    u: ArrayLike, s: ArrayLike, lam: ArrayLike, depth: int, u0: ArrayLike
) -> NDArray[np.float64]:
    """Time at which the per-component flow started at u0 reaches u.

    ``t(u) = ∫_{u0}^{u} dv / (L v^(2-2/L) (s - λv))``, the inverse of
    `flow_component` in t.

    Parameters
    ----------
    u : array_like
        Value to reach.
    s, lam : array_like
        Component's singular value and variance, ``s ≥ 0``, ``λ ≥ 0``.
    depth : int
        Depth L ≥ 1 (scalar).
    u0 : array_like
        Initial value (``u0 > 0`` for L ≥ 2).

    Returns
    -------
    ndarray
        ``t ≥ 0`` where u lies on the forward path from u0 towards ρ = s/λ
        (u = u0 gives 0); ``inf`` where u = ρ ≠ u0 (approached, never reached);
        NaN where u is never reached at t ≥ 0 (behind u0, beyond ρ, or
        outside the domain).

    Notes
    -----
    L = 1 and 2 invert their explicit solutions. For L ≥ 3 the integral has a
    closed form: with ``w = u/ρ``, ``p = w^{1/L}``, ``α = 1 - 2/L`` and the
    L-th roots of unity ``ω_k``,
    ``t = ρ^{-α}/(L s) · [-(L/(L-2)) p^{2-L} - Σ_k Re(ω_k² log(p - ω_k))]_{p0}^{p}``
    (partial fractions of ``L / (p^{L-1}(1 - p^L))``), evaluated as differences
    that keep full relative precision however small u0 is. Far above the
    target (u ≥ 4ρ, where those terms cancel) a series in ρ/u replaces it.
    ``s = 0`` (or ρ below rounding against u) and ``λ = 0`` use the power laws
    of the pure decay and pure growth flows.
    """
    depth = _check_depth(depth)
    u, s, lam, u0 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (u, s, lam, u0)))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # Differences u - u0 and ρ - u keep full precision near u0 and near ρ;
        # log1p of an argument < -1 is NaN, which marks u beyond ρ.
        rho = s / lam
        if depth == 1:
            t = np.where(lam > 0, np.log1p((u - u0) / (rho - u)) / lam, (u - u0) / s)
        elif depth == 2:
            # t = log1p(q)/(2s), q = ρ(u - u0)/(u0(ρ - u)); written via log1p(q)/q so
            # that it stays exact as s -> 0 (where it becomes (1/u - 1/u0)/(2λ)).
            q = rho * (u - u0) / (u0 * (rho - u))
            q_safe = np.where(q == 0, 1.0, q)
            log1p_ratio = np.where(q == 0, 1.0, np.log1p(q_safe) / q_safe)
            logistic = (u - u0) / (2.0 * u0 * lam * (rho - u)) * log1p_ratio
            growth = np.log1p((u - u0) / u0) / (2.0 * s)
            t = np.where(u > 0, np.where(lam > 0, logistic, growth), np.nan)
        else:
            t = _deep_time(u, s, lam, depth, u0)
        # ρ itself is only approached (λ > 0; with λ = 0, L ≥ 3 blows up in finite time).
        t = np.where((u == rho) & (lam > 0), np.inf, t)
        t = np.where(u == u0, 0.0, t)
        ok = (s >= 0) & (lam >= 0) & ((u0 > 0) | (depth == 1))
        return np.where(ok & (t >= 0), t, np.nan)


def _deep_time(u: NDArray, s: NDArray, lam: NDArray, depth: int, u0: NDArray) -> NDArray:
    """`flow_time` for depth ≥ 3 (errors silenced by the caller; invalid -> NaN or < 0)."""
    alpha = (depth - 2) / depth
    beta = 2.0 - 2.0 / depth
    rho = s / lam
    lw, lw0 = np.log(u) - np.log(rho), np.log(u0) - np.log(rho)
    l1, l1_0 = np.log(np.abs(rho - u)) - np.log(rho), np.log(np.abs(rho - u0)) - np.log(rho)
    general = _deep_delta(lw, l1, lw0, l1_0, depth) / (depth * s * rho**alpha)
    # u on the other side of ρ than u0 is never reached.
    general = np.where((rho - u0) * (rho - u) > 0, general, np.nan)
    decay = u0**-beta * np.expm1(beta * np.log(u0 / u)) / (beta * depth * lam)
    growth = -(u0**-alpha) * np.expm1(-alpha * np.log(u / u0)) / ((depth - 2) * s)
    negligible = (s == 0) | ((lam > 0) & (rho <= _EPS * u))  # ρ below rounding: pure decay
    return np.where(negligible, decay, np.where(lam == 0, growth, general))


def flow_crossing_time(
    f: ArrayLike, s: ArrayLike, lam: ArrayLike, depth: int, u0: ArrayLike
) -> NDArray[np.float64]:
    """Gradient-flow time at which a component first reaches ``f·ρ``.

    The continuous counterpart of the crossing step ``t_i(f)`` of THEORY §7:
    divide by η to compare with gradient-descent steps.

    Parameters
    ----------
    f : array_like
        Fraction of the target, ``0 < f < 1``.
    s, lam, u0 : array_like
        Component parameters and initial value, as in `flow_component`.
    depth : int
        Depth L ≥ 1.

    Returns
    -------
    ndarray
        ``flow_time(f·ρ)``; 0 where ``u0 ≥ f·ρ`` already; NaN for f outside
        (0, 1) or outside the domain of `flow_time`.
    """
    f, s, lam, u0 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (f, s, lam, u0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        target = f * (s / lam)
    t = np.where(u0 >= target, 0.0, flow_time(target, s, lam, depth, u0))
    return np.where((f > 0) & (f < 1), t, np.nan)


def flow_linear(
    t: ArrayLike, sigma_x: ArrayLike, sigma_xy: ArrayLike, w0: ArrayLike
) -> NDArray[np.float64]:
    """Exact gradient flow of the linear model (L = 1) from any initialisation.

    ``W(t) = e^{-tΣx} W0 + (I - e^{-tΣx}) Σx⁺ Σxy`` (THEORY §5), computed in
    the eigenbasis ``Σx = Q diag(μ) Qᵀ`` as
    ``W̃(t) = e^{-tμ} W̃0 + (1 - e^{-tμ})/μ · Σ̃xy``, whose coefficient tends to
    t as μ → 0. On Σx's null space this keeps W0 when Σxy has no component
    there (always the case for Σxy = XᵀY/n), and is the exact linear drift
    otherwise; it is also free of cancellation for tiny μ.

    Parameters
    ----------
    t : array_like
        Times, any shape.
    sigma_x : array_like
        Σx, (d, d) symmetric positive semi-definite.
    sigma_xy : array_like
        Σxy, (d, p).
    w0 : array_like
        Initial product W(0), (d, p).

    Returns
    -------
    ndarray
        W(t), shape ``(*t.shape, d, p)``.
    """
    t = np.asarray(t, dtype=float)
    mu, q = np.linalg.eigh(np.asarray(sigma_x, dtype=float))
    w0_t = q.T @ np.asarray(w0, dtype=float)
    sxy_t = q.T @ np.asarray(sigma_xy, dtype=float)
    tt = t[..., None]
    w_t = np.exp(-tt * mu)[..., None] * w0_t + _phi(tt, mu)[..., None] * sxy_t
    return q @ w_t


def flow_full(
    t_eval: ArrayLike,
    sigma_x: ArrayLike,
    sigma_xy: ArrayLike,
    layers0: Sequence[ArrayLike],
    *,
    method: str = "DOP853",
    rtol: float = 1e-12,
    atol: float = 1e-14,
) -> NDArray[np.float64]:
    """Integrate the full matrix gradient flow of a depth-L network numerically.

    ``dW_l/dt = -(W_1⋯W_{l-1})ᵀ G (W_{l+1}⋯W_L)ᵀ``, ``G = Σx W - Σxy``
    (THEORY §1), with `scipy.integrate.solve_ivp`. A slow reference for the
    closed forms, valid for any initialisation and any data.

    Parameters
    ----------
    t_eval : array_like
        Increasing times ≥ 0 at which to return the product.
    sigma_x : array_like
        Σx, (d, d).
    sigma_xy : array_like
        Σxy, (d, p).
    layers0 : sequence of array_like
        Initial layers ``W_1 (d×r), W_2 (r×r), …, W_L (r×p)``; a single (d, p)
        array for L = 1.
    method, rtol, atol
        Passed to `solve_ivp` (use "Radau" or "LSODA" for stiff problems).

    Returns
    -------
    ndarray
        Products ``W(t) = W_1⋯W_L`` at ``t_eval``, shape ``(len(t_eval), d, p)``.
    """
    from scipy.integrate import solve_ivp  # heavy import, only this reference needs it

    sigma_x = np.asarray(sigma_x, dtype=float)
    sigma_xy = np.asarray(sigma_xy, dtype=float)
    t_eval = np.atleast_1d(np.asarray(t_eval, dtype=float))
    layers0 = [np.asarray(w, dtype=float) for w in layers0]
    shapes = [w.shape for w in layers0]
    bounds = np.cumsum([0] + [w.size for w in layers0])

    def unpack(y: NDArray) -> list[NDArray]:
        return [
            y[a:b].reshape(shape)
            for a, b, shape in zip(bounds[:-1], bounds[1:], shapes, strict=True)
        ]

    def product(layers: list[NDArray]) -> NDArray:
        w = layers[0]
        for layer in layers[1:]:
            w = w @ layer
        return w

    def rhs(_t: float, y: NDArray) -> NDArray:
        layers = unpack(y)
        # prefixes[l] = W_1⋯W_{l-1} (identity of size d for l = 1), suffixes likewise.
        prefixes = [np.eye(sigma_x.shape[0])]
        for layer in layers[:-1]:
            prefixes.append(prefixes[-1] @ layer)
        suffixes = [np.eye(sigma_xy.shape[1])]
        for layer in layers[:0:-1]:
            suffixes.append(layer @ suffixes[-1])
        suffixes.reverse()
        grad = sigma_x @ (prefixes[-1] @ layers[-1]) - sigma_xy
        return -np.concatenate(
            [(pre.T @ grad @ suf.T).ravel() for pre, suf in zip(prefixes, suffixes, strict=True)]
        )

    y0 = np.concatenate([w.ravel() for w in layers0])
    sol = solve_ivp(rhs, (0.0, t_eval[-1]), y0, method=method, t_eval=t_eval, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return np.stack([product(unpack(y)) for y in sol.y.T])


def figure1_curves(
    t_over_tau: ArrayLike, s: ArrayLike, lam: ArrayLike, depth: int, delta: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Norms of the product along the closed-form flow, against rescaled time.

    The paper's Figure 1: under aligned initialisation (per-layer scale δ,
    ``u_i(0) = e^{-Lδ}``) and ε = 0 the product's singular values are the
    ``u_i``, so its nuclear norm is ``Σ|u_i|`` and its squared Frobenius norm
    ``Σu_i²``. Time is ``τ_L(δ)·t_over_tau``, so the transitions of L ≥ 2 sit
    near ``t_over_tau = 1/s_i`` (THEORY §6; the paper's per-product δ puts them
    at ``1/(2 s_i)``). L = 1 has no natural rescaling; it uses ``τ_2(δ) = δ``
    so that L = 1 and L = 2 share the paper's axis t/δ.

    Parameters
    ----------
    t_over_tau : array_like
        Rescaled times, any shape.
    s, lam : array_like
        Components' singular values and variances, shape (n,).
    depth : int
        Depth L ≥ 1.
    delta : float
        Per-layer initialisation scale δ > 0.

    Returns
    -------
    nuclear, frob_sq : ndarray
        ``Σ_i |u_i|`` and ``Σ_i u_i²``, each of shape ``t_over_tau.shape``.
    """
    scale = tau(max(depth, 2), delta)
    t = scale * np.asarray(t_over_tau, dtype=float)[..., None]
    u = flow_component(t, s, lam, depth, np.exp(-depth * delta))
    return np.abs(u).sum(axis=-1), (u**2).sum(axis=-1)
