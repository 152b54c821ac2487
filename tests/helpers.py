"""Small problems built directly in the tests (independent of lindyn.datasets)."""

from __future__ import annotations

import numpy as np
from scipy.stats import ortho_group


def random_problem(n: int, d: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs with an anisotropic spectrum and noisy linear targets."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.linspace(1.5, 0.3, d)
    Y = X @ rng.standard_normal((d, p)) / np.sqrt(d) + 0.1 * rng.standard_normal((n, p))
    return X, Y


def commuting_problem(
    s: np.ndarray, lam: np.ndarray, p: int, n: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X, Y with Σx = U diag(lam) Uᵀ and Σxy = U_m diag(s) V_mᵀ exactly (ε_A1 = 0).

    Returns X, Y, U, V.
    """
    d, m = lam.size, s.size
    U = ortho_group.rvs(d, random_state=seed)
    V = ortho_group.rvs(p, random_state=seed + 1) if p > 1 else np.ones((1, 1))
    rng = np.random.default_rng(seed)
    Z, _ = np.linalg.qr(rng.standard_normal((n, d)))
    X = np.sqrt(n) * Z * np.sqrt(lam) @ U.T
    coef = np.zeros((d, p))
    coef[:m, :m] = np.diag(s / np.sqrt(lam[:m]))
    Y = np.sqrt(n) * Z @ coef @ V.T
    return X, Y, U, V


def commuting_moments(
    rng: np.random.Generator, d: int, p: int, lam: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """U, V, Σx = U diag(λ) Uᵀ and Σxy = U_m diag(s) V_mᵀ, without data: ε = 0 exactly."""
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    v, _ = np.linalg.qr(rng.standard_normal((p, p)))
    m = len(s)
    return u, v, u @ np.diag(lam) @ u.T, u[:, :m] @ np.diag(s) @ v[:, :m].T


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Relative Frobenius distance ‖a − b‖/‖b‖."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def product(layers) -> np.ndarray:
    """The product W_1 W_2 ⋯ W_L of a list of layers."""
    W = layers[0]
    for layer in layers[1:]:
        W = W @ layer
    return W
