"""Statistics, spectra and the ε measures of THEORY §3."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import commuting_problem, random_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from lindyn import theory
from lindyn.datasets import DatasetError
from lindyn.stats import complement_basis, dataset_stats, eps_a1, eps_iso


@pytest.fixture(params=[(6, 3), (8, 8), (5, 2)], ids=lambda dp: f"d{dp[0]}p{dp[1]}")
def commuting(request):
    d, p = request.param
    m = min(d, p)
    s = np.linspace(2.0, 0.5, m)
    lam = np.linspace(1.0, 0.2, d)
    X, Y, _U, _V = commuting_problem(s, lam, p, n=100, seed=3)
    return X, Y, s, lam


def test_sufficient_statistics_match_data():
    X, Y = random_problem(40, 5, 3, seed=0)
    st_ = dataset_stats(X, Y)
    np.testing.assert_allclose(st_.sigma_x, X.T @ X / 40, rtol=1e-12)
    np.testing.assert_allclose(st_.sigma_xy, X.T @ Y / 40, rtol=1e-12)
    assert st_.yy == pytest.approx(np.sum(Y**2) / 40)
    np.testing.assert_allclose(st_.Q @ np.diag(st_.mu) @ st_.Q.T, st_.sigma_x, atol=1e-12)
    assert np.all(np.diff(st_.mu) <= 0)
    # U, V orthogonal and Σxy = U S Vᵀ
    np.testing.assert_allclose(st_.U.T @ st_.U, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(st_.V.T @ st_.V, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(st_.U[:, :3] * st_.s @ st_.V.T, st_.sigma_xy, atol=1e-12)


def test_commuting_data_has_zero_eps_a1_and_true_spectra(commuting):
    X, Y, s, lam = commuting
    st_ = dataset_stats(X, Y)
    assert st_.eps_a1 < 1e-12
    np.testing.assert_allclose(st_.s, s, rtol=1e-10)
    np.testing.assert_allclose(st_.lam, lam[: s.size], rtol=1e-10)
    np.testing.assert_allclose(st_.rho, s / lam[: s.size], rtol=1e-10)


def test_eps_a1_positive_when_not_commuting():
    X, Y = random_problem(200, 6, 3, seed=1)
    assert dataset_stats(X, Y).eps_a1 > 0.01


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_eps_invariant_to_rotating_features(seed):
    X, Y = random_problem(60, 5, 3, seed=seed % 7)
    R = ortho_group.rvs(5, random_state=seed)
    a, b = dataset_stats(X, Y), dataset_stats(X @ R, Y)
    assert b.eps_a1 == pytest.approx(a.eps_a1, rel=1e-8, abs=1e-12)
    assert b.eps_iso == pytest.approx(a.eps_iso, rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(b.s, a.s, rtol=1e-10)
    np.testing.assert_allclose(b.lam, a.lam, rtol=1e-8)


def test_eps_iso_zero_for_isotropic_and_one_for_rank_one():
    assert eps_iso(np.eye(4) * 3) == 0.0
    v = np.ones((4, 1))
    # rank one: ‖vvᵀ − (tr/d) I‖/‖vvᵀ‖ = sqrt(1 − 1/d)
    assert eps_iso(v @ v.T) == pytest.approx(np.sqrt(1 - 1 / 4))


def test_complement_basis_handles_rank_deficient_inputs():
    """Pixels that never vary: Σx has a zero eigenspace containing none of U_k.

    The complement rotated by CᵀΣxC keeps ε_A1 = 0 on commuting data even when
    Σxy has lower rank than the number of varying features; an arbitrary
    completion does not.
    """
    s = np.array([2.0, 1.0])
    lam = np.array([1.0, 0.8, 0.6, 0.4, 0.0, 0.0])
    X, Y, U, _V = commuting_problem(s, np.where(lam > 0, lam, 1.0), 2, n=100, seed=5)
    X = X @ U @ np.diag(np.sqrt(lam) / np.sqrt(np.where(lam > 0, lam, 1.0))) @ U.T
    st_ = dataset_stats(X, Y)
    assert st_.rank == 2
    assert st_.eps_a1 < 1e-10
    rng = np.random.default_rng(0)
    arbitrary = np.hstack([st_.U[:, :2], np.linalg.qr(rng.standard_normal((6, 6)))[0][:, 2:]])
    arbitrary[:, 2:] -= st_.U[:, :2] @ (st_.U[:, :2].T @ arbitrary[:, 2:])
    arbitrary[:, 2:] = np.linalg.qr(arbitrary[:, 2:])[0]
    assert eps_a1(st_.sigma_x, arbitrary) > 1e-3


def test_complement_basis_is_orthogonal():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((7, 7))
    sigma = A @ A.T
    U_k = np.linalg.qr(rng.standard_normal((7, 3)))[0]
    U = complement_basis(sigma, U_k)
    np.testing.assert_allclose(U.T @ U, np.eye(7), atol=1e-12)
    block = (U.T @ sigma @ U)[3:, 3:]
    np.testing.assert_allclose(block, np.diag(np.diag(block)), atol=1e-10)


def test_orders_by_s_and_rrr_score():
    """THEORY §8's example: s = (1, 0.5), λ = (2, 0.4): RRR prefers the second."""
    X, Y, _U, _V = commuting_problem(np.array([1.0, 0.5]), np.array([2.0, 0.4, 1.0]), 2, seed=1)
    st_ = dataset_stats(X, Y)
    assert list(st_.order_rrr) == [1, 0]
    assert list(st_.orders_agree) == [False, True]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same rows"):
        dataset_stats(np.ones((3, 2)), np.ones((4, 1)))


@pytest.mark.parametrize("singular", [False, True])
def test_stored_rrr_closed_form_matches_theory(singular):
    X, Y = random_problem(50, 6, 4, seed=7)
    if singular:
        X[:, 5] = X[:, 0]  # rank-deficient Σx
    st_ = dataset_stats(X, Y)
    for k in range(1, 5):
        np.testing.assert_allclose(
            st_.w_rrr(k), theory.w_rrr(st_.sigma_x, st_.sigma_xy, k), rtol=1e-7, atol=1e-9
        )
        assert st_.rrr_loss(k) == pytest.approx(
            theory.rrr_loss(st_.sigma_x, st_.sigma_xy, st_.yy, k), rel=1e-9
        )


# ---------------------------------------------------------------- data at the edge of float64

SCALED = {  # statistic: (power of the X factor, power of the Y factor)
    "sigma_x": (2, 0),
    "sigma_xy": (1, 1),
    "yy": (0, 2),
    "mu": (2, 0),
    "s": (1, 1),
    "lam": (2, 0),
    "rho": (-1, 1),
    "rrr_coef": (-1, 1),
    "rrr_gain": (0, 2),
}


@settings(max_examples=60, deadline=None)
@given(kx=st.integers(-300, 300), ky=st.integers(-300, 300))
def test_statistics_of_rescaled_data_are_rescaled_or_refused(kx, ky):
    """X·10^kx, Y·10^ky: every statistic is the base one times its power of the factors,
    or, if that power leaves float64's normal range, the computation is refused.

    Before: Σx, λ off by 1e-4 (kx = -160), "Eigenvalues did not converge", or inf.
    """
    X, Y = random_problem(30, 4, 3, seed=5)
    base = dataset_stats(X, Y)
    decades = {name: a * kx + b * ky for name, (a, b) in SCALED.items()}
    try:
        got = dataset_stats(X * 10.0**kx, Y * 10.0**ky)
    except DatasetError as err:  # base statistics lie within 1e±3: allow that margin
        assert re.search("would be about .*(beyond|below) float64's", str(err))
        assert any(abs(k) > 300 for k in decades.values()), (decades, err)
        return
    assert all(abs(k) < 312 for k in decades.values()), decades
    for name, k in decades.items():
        value, expected = np.asarray(getattr(got, name)), np.asarray(getattr(base, name))
        value = value / 10.0 ** (k // 2) / 10.0 ** (k - k // 2)  # each factor representable
        assert np.linalg.norm(value - expected) <= 1e-10 * np.linalg.norm(expected), name
    assert got.eps_a1 == pytest.approx(base.eps_a1, rel=1e-8)


@pytest.mark.parametrize("shift", [-505, -300, 300, 505])
def test_power_of_two_scaling_is_exact(shift):
    """The rescaling is exact: a power-of-two factor changes nothing but exponents."""
    X, Y = random_problem(30, 4, 3, seed=6)
    base, got = dataset_stats(X, Y), dataset_stats(np.ldexp(X, shift), Y)
    np.testing.assert_array_equal(got.sigma_x, np.ldexp(base.sigma_x, 2 * shift))
    np.testing.assert_array_equal(got.sigma_xy, np.ldexp(base.sigma_xy, shift))
    np.testing.assert_array_equal(got.s, np.ldexp(base.s, shift))
    np.testing.assert_array_equal(got.rho, np.ldexp(base.rho, -shift))
    assert got.yy == base.yy and got.stats_hash != base.stats_hash


def test_errors_name_the_data():
    X, Y = random_problem(30, 4, 3, seed=7)
    meta = {"loader": "npz", "source": ["/data/tiny.npz"]}
    with pytest.raises(DatasetError, match=r"^loader 'npz': /data/tiny\.npz: Σx = XᵀX/n would"):
        dataset_stats(X * 1e-160, Y, meta=meta)
    X[2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"^dataset_stats: X has 1 non-finite .* row 2, col"):
        dataset_stats(X, Y)
