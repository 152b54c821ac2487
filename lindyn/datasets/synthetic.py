"""Synthetic datasets: exact commuting regression and the noisy low-rank autoencoder.

``commuting`` builds X and Y so that, with no sampling error,

    Σx  = XᵀX/n = U (Λ + B) Uᵀ,       Σxy = XᵀY/n = U_{:, :m} S V_{:, :m}ᵀ,

``m = min(d, p)``, U (d×d) and V (p×p) random orthogonal, S = diag(s),
Λ = diag(lam). With ``perturbation = 0`` (B = 0) Σx and ΣxyΣxyᵀ commute:
Assumption 1 holds exactly (ε_A1 = 0). Construction: Z (n×d) with orthonormal
columns orthogonal to the all-ones vector, M = Λ + B,

    X = √n Z M^{1/2} Uᵀ,   Y = √n Z M^{-1/2} E_m S V_mᵀ + noise·(I − ZZᵀ) G,

G standard normal (n×p), E_m the first m columns of I_d. The noise lies
outside X's column space, so it changes the loss but not Σxy. Because X's
columns have zero mean, ``center=True`` leaves Σx and Σxy unchanged.

B is symmetric with zero diagonal and zero on the block of the d − m
directions that carry no signal, scaled to ``‖B‖_F = perturbation·‖Λ‖_F``; the
U-basis then stays the one ε_A1 (THEORY.md §3) uses, and ε_A1 equals
``‖B‖_F / ‖Λ + B‖_F`` exactly (recorded as ``truth.eps_A1``). Its entries are
``B_ij = c·C_ij·sqrt(λ_i λ_j)``, C a random symmetric matrix, so that
``Λ + B = Λ^{1/2}(I + cC)Λ^{1/2}`` stays positive definite for perturbations up
to a limit (about 0.3 with the default spectrum; a larger value raises
`DatasetError` stating the limit). The random draws do not depend on
``perturbation``: changing it changes B's size only.

Defaults: ``s_i = 0.7^i`` and ``λ_i = 0.7^i (1 + i/10)`` (i = 0, 1, ...), so
``s_1 = λ_max = 1`` (hence ``scale="none"`` is the default: the data are
already unit-scaled and the truth in the metadata is the data's own),
transitions ``1/s_i`` are well separated, and ``ρ_i = s_i/λ_i = 1/(1 + i/10)``
are distinct and between 1/2 and 1 for the default 10 components.

``autoencoder`` is the paper's §4.2: ``x = A z + σ ξ``, A (d×rank) with
orthonormal columns, ``z ~ N(0, diag(spectrum))``, ξ standard normal, Y = X,
and the clean signal ``X_clean = Z Aᵀ`` kept for the denoising error. The
default spectrum ``0.6^i`` keeps every component above the default noise
variance σ² = 0.09.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.options import Option, common_options, integer, real, real_list

__all__ = ["AUTOENCODER_OPTIONS", "COMMUTING_OPTIONS", "read_autoencoder", "read_commuting"]

COMMUTING_OPTIONS: dict[str, Option] = {
    "d": Option(20, integer(1), "input dimension"),
    "p": Option(10, integer(1), "output dimension"),
    "s": Option(
        None, real_list, "min(d, p) singular values of Σxy, non-increasing, > 0 (none: 0.7^i)"
    ),
    "lam": Option(None, real_list, "d eigenvalues of Σx in U order, > 0 (none: 0.7^i (1+i/10))"),
    "perturbation": Option(0.0, real(0.0), "‖B‖_F / ‖Λ‖_F of the non-commuting part B"),
    "noise": Option(
        0.1, real(0.0), "standard deviation of the target noise (outside X's column space)"
    ),
    **common_options(n=500, scale="none"),
}

AUTOENCODER_OPTIONS: dict[str, Option] = {
    "d": Option(20, integer(1), "input dimension"),
    "rank": Option(5, integer(1), "rank of the clean signal"),
    "sigma": Option(0.3, real(0.0), "noise standard deviation"),
    "spectrum": Option(None, real_list, "rank variances of z, > 0 (none: 0.6^i)"),
    **common_options(n=1000, scale="unit"),
}


def _haar(rng: np.random.Generator, k: int) -> np.ndarray:
    """A uniformly random k×k orthogonal matrix."""
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def _positive(name: str, values: list[float], size: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != size:
        raise DatasetError(f"option {name!r}: needs {size} values ({what}), got {array.size}")
    if np.any(array <= 0):
        raise DatasetError(f"option {name!r}: values must be > 0, got {values}")
    return array


def _perturbation(rng: np.random.Generator, lam: np.ndarray, m: int, size: float) -> np.ndarray:
    """B = Λ^{1/2} C Λ^{1/2} (C random symmetric, masked), ‖B‖_F = size·‖Λ‖_F, Λ + B > 0."""
    d = lam.size
    index = np.arange(d)
    mask = (index[:, None] != index[None, :]) & ((index[:, None] < m) | (index[None, :] < m))
    G = rng.standard_normal((d, d))  # drawn whatever the size: same stream for every size
    C = (G + G.T) * mask
    if size == 0:
        return np.zeros((d, d))
    if not mask.any():
        raise DatasetError("option 'perturbation': must be 0 when d = 1 (no off-diagonal entry)")
    root = np.sqrt(lam)
    unit = float(np.linalg.norm(lam) / np.linalg.norm(root[:, None] * C * root))
    # Λ + size·unit·Λ^{1/2}CΛ^{1/2} = Λ^{1/2}(I + size·unit·C)Λ^{1/2}: PD iff size < limit.
    limit = 1.0 / (unit * -float(np.linalg.eigvalsh(C)[0]))
    if size >= limit:
        raise DatasetError(
            f"option 'perturbation': {size} is too large, Λ + B would not be positive "
            f"definite; the limit for this spectrum and seed is {limit:.4g}"
        )
    return root[:, None] * (size * unit * C) * root


def read_commuting(opts: Mapping[str, Any]) -> Raw:
    """Exact synthetic regression satisfying Assumption 1 (see the module docstring).

    Parameters
    ----------
    opts : mapping
        Resolved options of ``COMMUTING_OPTIONS``.

    Returns
    -------
    Raw
        With the truth (U, V, s, lam before scaling, ε_A1) in ``extra``.
    """
    d, p, n = opts["d"], opts["p"], opts["n"]
    m = min(d, p)
    if n < d + 1:
        raise DatasetError(f"option 'n': must be >= d + 1 = {d + 1}, got {n}")
    index = np.arange(d)
    s = 0.7 ** index[:m] if opts["s"] is None else _positive("s", opts["s"], m, "m = min(d, p)")
    if np.any(np.diff(s) > 0):
        raise DatasetError(f"option 's': must be non-increasing (SVD order), got {s.tolist()}")
    lam = (
        0.7**index * (1 + index / 10)
        if opts["lam"] is None
        else _positive("lam", opts["lam"], d, "d")
    )
    rng = np.random.default_rng(opts["seed"])
    U, V = _haar(rng, d), _haar(rng, p)
    B = _perturbation(rng, lam, m, opts["perturbation"])
    w, Q = np.linalg.eigh(np.diag(lam) + B)
    basis, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))
    Z = basis[:, 1:]
    G = rng.standard_normal((n, p))
    residual = G - Z @ (Z.T @ G)
    coef = np.zeros((d, p))
    coef[:m] = s[:, None] * V[:, :m].T
    X = math.sqrt(n) * Z @ ((Q * np.sqrt(w)) @ Q.T) @ U.T
    Y = math.sqrt(n) * Z @ ((Q / np.sqrt(w)) @ Q.T) @ coef + opts["noise"] * residual
    eps = float(np.linalg.norm(B) / np.linalg.norm(np.diag(lam) + B))
    truth = {
        "U": U.tolist(),
        "V": V.tolist(),
        "s": s.tolist(),
        "lam": lam.tolist(),
        "eps_A1": eps,
        "note": "before scaling: the data have Σx = x_scale²·U(Λ+B)Uᵀ, "
        "Σxy = x_scale·y_scale·U_m S V_mᵀ",
    }
    return Raw(
        X=X,
        Y=Y,
        source="synthetic: exact commuting regression",
        extra={"s": s.tolist(), "lam": lam.tolist(), "truth": truth},
    )


def read_autoencoder(opts: Mapping[str, Any]) -> Raw:
    """Noisy low-rank data for a denoising linear autoencoder (the paper's §4.2).

    Parameters
    ----------
    opts : mapping
        Resolved options of ``AUTOENCODER_OPTIONS``.

    Returns
    -------
    Raw
        Target the input, with the clean signal.
    """
    d, rank, n = opts["d"], opts["rank"], opts["n"]
    if rank > d:
        raise DatasetError(f"option 'rank': must be <= d = {d}, got {rank}")
    spectrum = (
        0.6 ** np.arange(rank)
        if opts["spectrum"] is None
        else _positive("spectrum", opts["spectrum"], rank, "rank")
    )
    rng = np.random.default_rng(opts["seed"])
    A, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    clean = (rng.standard_normal((n, rank)) * np.sqrt(spectrum)) @ A.T
    X = clean + opts["sigma"] * rng.standard_normal((n, d))
    return Raw(
        X=X,
        X_clean=clean,
        source="synthetic: low-rank signal plus isotropic noise",
        extra={"spectrum": spectrum.tolist()},
    )
