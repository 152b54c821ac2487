"""Statistics, spectra and the ε measures of THEORY §3."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import commuting_problem, random_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from lindyn import theory
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
