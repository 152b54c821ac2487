"""Sufficient statistics of a least-squares problem and the spectra the theory uses.

Everything gradient descent on ``ℒ(W) = 1/(2n)‖Y − XW‖²`` needs from the data is
``Σx = XᵀX/n``, ``Σxy = XᵀY/n`` and the constant ``tr(YᵀY)/n`` (THEORY §2).
This module computes them once, together with

* the eigendecomposition ``Σx = Q diag(μ) Qᵀ`` (the simulator's working basis);
* the full SVD ``Σxy = U S Vᵀ`` with the undetermined columns of ``U`` fixed as
  THEORY §3 prescribes (complement of the top-``k`` columns, rotated by the
  eigenvectors of ``CᵀΣxC``);
* ``λ_i = (UᵀΣxU)_ii``, ``ρ_i = s_i/λ_i``, the measures ``ε_A1`` and ``ε_iso``;
* the order of components by ``s_i`` and by ``s_i²/λ_i`` (THEORY §8);
* the same three statistics of a held-out test set (:class:`HeldOut`), whose test
  loss ``½ tr(WᵀΣx'W) − tr(WᵀΣxy') + ½ tr(Y'ᵀY')/n'`` of any W they give exactly.

Only numpy is imported at module level, so that simulation jobs start fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lindyn.theory import loss, order_by_s_and_rrr

__all__ = ["HeldOut", "Stats", "complement_basis", "dataset_stats", "eps_a1", "eps_iso"]

# Relative threshold under which a singular value of Σxy counts as zero.
RANK_RTOL = 1e-10


@dataclass(frozen=True)
class HeldOut:
    """Sufficient statistics of a held-out test set, preprocessed as the training data.

    Attributes
    ----------
    sigma_x : (d, d) array
        ``X'ᵀX'/n'`` of the test inputs.
    sigma_xy : (d, p) array
        ``X'ᵀY'/n'``.
    yy : float
        ``tr(Y'ᵀY')/n'``.
    n : int
        Test rows ``n'``.
    """

    sigma_x: np.ndarray
    sigma_xy: np.ndarray
    yy: float
    n: int

    def loss(self, W: np.ndarray) -> np.ndarray:
        """Test loss ``1/(2n')‖Y' − X'W‖²`` of products ``W`` (…, d, p), exactly.

        Returns
        -------
        ndarray
            Shape ``W.shape[:-2]``.
        """
        return loss(W, self.sigma_x, self.sigma_xy, self.yy)

    def rotated(self, Q: np.ndarray) -> HeldOut:
        """The same statistics in the input basis ``Q`` (``W̃ = QᵀW`` has the same loss)."""
        return HeldOut(Q.T @ self.sigma_x @ Q, Q.T @ self.sigma_xy, self.yy, self.n)


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics and spectra of one dataset.

    Attributes
    ----------
    sigma_x : (d, d) array
        Input covariance ``XᵀX/n``.
    sigma_xy : (d, p) array
        Input–output covariance ``XᵀY/n``.
    yy : float
        ``tr(YᵀY)/n``, the constant part of the loss.
    mu, Q : (d,), (d, d) arrays
        Eigenvalues (descending) and eigenvectors of ``Σx``.
    U, V : (d, d), (p, p) arrays
        Singular bases of ``Σxy``; columns past ``rank`` of ``U`` are the
        complement basis of THEORY §3.
    s, lam, rho : (m,) arrays, ``m = min(d, p)``
        Singular values ``s_i`` (descending), ``λ_i = (UᵀΣxU)_ii`` and
        ``ρ_i = s_i/λ_i`` (0 where ``s_i = 0``).
    rank : int
        Numerical rank of ``Σxy``.
    eps_a1, eps_iso : float
        Normalised departures from Assumption 1 and from isotropy (THEORY §3),
        with Frobenius norms (not squared).
    rrr_coef, rrr_basis, rrr_gain : (d, p), (p, p), (p,) arrays
        Reduced-rank regression in closed form (THEORY §8): ``Σx⁺Σxy``, the
        eigenvectors of ``ΣxyᵀΣx⁺Σxy`` and its eigenvalues, descending; see
        :meth:`w_rrr` and :meth:`rrr_loss`.
    sigma_xc : (d, d) array or None
        ``XᵀX_clean/n`` for a denoising autoencoder, else None.
    cc : float or None
        ``tr(X_cleanᵀX_clean)/n``, else None.
    held_out : HeldOut or None
        The test set's statistics, if the dataset has one.
    meta : dict
        The dataset's metadata (options, hash, source).
    """

    sigma_x: np.ndarray
    sigma_xy: np.ndarray
    yy: float
    mu: np.ndarray
    Q: np.ndarray
    U: np.ndarray
    V: np.ndarray
    s: np.ndarray
    lam: np.ndarray
    rho: np.ndarray
    rank: int
    eps_a1: float
    eps_iso: float
    rrr_coef: np.ndarray | None = None
    rrr_basis: np.ndarray | None = None
    rrr_gain: np.ndarray | None = None
    sigma_xc: np.ndarray | None = None
    cc: float | None = None
    held_out: HeldOut | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def d(self) -> int:
        """Input dimension."""
        return self.sigma_x.shape[0]

    @property
    def p(self) -> int:
        """Output dimension."""
        return self.sigma_xy.shape[1]

    @property
    def m(self) -> int:
        """Number of components, ``min(d, p)``."""
        return self.s.shape[0]

    @property
    def order_rrr(self) -> np.ndarray:
        """Component indices (0-based) sorted by decreasing ``s_i²/λ_i``
        (:func:`lindyn.theory.order_by_s_and_rrr`)."""
        return order_by_s_and_rrr(self.s, self.lam)[1]

    @property
    def orders_agree(self) -> np.ndarray:
        """For each ``k = 1..m``, whether the top-``k`` components by ``s_i`` and
        by ``s_i²/λ_i`` are the same set (then ``W_k^seq = W_k^RRR`` under ε = 0)."""
        return order_by_s_and_rrr(self.s, self.lam)[2]

    @property
    def stats_hash(self) -> str:
        """Hash of the statistics that determine every simulation on this dataset."""
        digest = hashlib.sha256()
        arrays = [self.sigma_x, self.sigma_xy, np.array([self.yy])]
        if self.held_out is not None:  # the test loss every run logs depends on it
            held = self.held_out
            arrays += [held.sigma_x, held.sigma_xy, np.array([held.yy])]
        for array in arrays:
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()[:16]

    def w_rrr(self, k: int) -> np.ndarray:
        """Reduced-rank regression ``W_k^RRR = Σx⁺ Σxy P_k`` (rank at most ``k``)."""
        top = self.rrr_basis[:, :k]
        return self.rrr_coef @ top @ top.T

    def rrr_loss(self, k: int) -> float:
        """``min_{rank W ≤ k} ℒ(W) = ½ tr(YᵀY)/n − ½ Σ_{i≤k} g_i`` (``g`` = :attr:`rrr_gain`)."""
        return float(0.5 * self.yy - 0.5 * np.sum(self.rrr_gain[:k]))


def eps_iso(sigma_x: np.ndarray) -> float:
    """Departure of ``Σx`` from isotropy: ``‖Σx − (tr Σx/d) I‖_F / ‖Σx‖_F``."""
    d = sigma_x.shape[0]
    norm = np.linalg.norm(sigma_x)
    if norm == 0:
        return 0.0
    return float(np.linalg.norm(sigma_x - np.trace(sigma_x) / d * np.eye(d)) / norm)


def eps_a1(sigma_x: np.ndarray, U: np.ndarray) -> float:
    """Departure from Assumption 1: ``‖M − diag(M)‖_F / ‖M‖_F`` with ``M = UᵀΣxU``.

    ``U`` must be a full orthogonal basis whose undetermined columns were chosen
    by :func:`complement_basis`; with an arbitrary completion ε is meaningless.
    """
    M = U.T @ sigma_x @ U
    norm = np.linalg.norm(M)
    if norm == 0:
        return 0.0
    return float(np.linalg.norm(M - np.diag(np.diag(M))) / norm)


def complement_basis(sigma_x: np.ndarray, U_k: np.ndarray) -> np.ndarray:
    """Complete ``U_k`` (d×k, orthonormal columns) to an orthogonal basis.

    The complement is an orthonormal basis ``C`` of the null space of ``U_kᵀ``
    rotated by the eigenvectors of ``CᵀΣxC`` (descending eigenvalues), which
    makes ``UᵀΣxU`` block-diagonal on the complement (THEORY §3).
    """
    import scipy.linalg  # lazily: simulation jobs read stored bases and never need it

    d, k = U_k.shape
    if k == 0:
        C = np.eye(d)
    else:
        C = scipy.linalg.null_space(U_k.T)
    if C.shape[1] == 0:
        return U_k
    _evals, evecs = np.linalg.eigh(C.T @ sigma_x @ C)
    C = C @ evecs[:, ::-1]
    return np.hstack([U_k, C])


def _origin(meta: dict[str, Any] | None) -> str:
    """How messages name the data: loader and source from the metadata when known."""
    meta = meta or {}
    parts = [f"loader {meta['loader']!r}"] if "loader" in meta else []
    if "source" in meta:
        from lindyn.datasets.errors import describe_source

        parts.append(describe_source(meta["source"]))
    return ": ".join(parts) or "dataset_stats"


def dataset_stats(
    X: np.ndarray,
    Y: np.ndarray,
    X_clean: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
    X_test: np.ndarray | None = None,
    Y_test: np.ndarray | None = None,
) -> Stats:
    """Compute the sufficient statistics and spectra of a dataset.

    The work is done on X, Y (and X_clean) multiplied by exact powers of two
    that bring their largest |entry| into [1/2, 1) (`lindyn.datasets.floatrange`),
    and each statistic is scaled back: products cannot overflow or underflow,
    and the result equals the direct computation whenever that stays in range.

    Parameters
    ----------
    X : (n, d) array
        Inputs, one sample a row.
    Y : (n, p) array
        Targets.
    X_clean : (n, d) array, optional
        Clean signal of a denoising autoencoder (reconstruction error).
    meta : dict, optional
        Dataset metadata, kept in the result; its ``loader`` and ``source``
        name the data in error messages.
    X_test, Y_test : (n', d), (n', p) arrays, optional
        A held-out test set, preprocessed as X and Y (:attr:`Stats.held_out`).

    Returns
    -------
    Stats

    Raises
    ------
    ValueError
        If the shapes do not match.
    lindyn.datasets.DatasetError
        If an entry is not finite, or a statistic would overflow or be
        subnormal in float64 (then it loses relative precision).
    """
    from lindyn.datasets.floatrange import binary_exponent, check_finite, restore

    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must be 2-D with the same rows, got {X.shape} and {Y.shape}")
    where = _origin(meta)
    hint = "rescale the data (the loaders' scale='unit' does so exactly)"

    def working(name: str, array: np.ndarray) -> tuple[np.ndarray, int]:
        check_finite(f"{where}: {name}", array)
        exponent = binary_exponent(array)
        return np.ldexp(array, -exponent), exponent

    def back(what: str, value: Any, exponent: int, leading: int = 0) -> np.ndarray:
        return restore(f"{where}: {what}", value, exponent, leading=leading, hint=hint)

    same = Y is X  # autoencoders: keep one array, so numpy forms XᵀX as before (symmetric)
    X, ex = working("X", X)
    Y, ey = (X, ex) if same else working("Y", Y)
    # From here on X, Y and every statistic are those of the rescaled data, until `back`.
    n, d = X.shape
    p = Y.shape[1]
    sigma_x = X.T @ X / n
    sigma_x = (sigma_x + sigma_x.T) / 2
    sigma_xy = X.T @ Y / n
    yy = np.sum(Y * Y) / n

    mu, Q = np.linalg.eigh(sigma_x)
    mu, Q = mu[::-1].copy(), Q[:, ::-1].copy()

    U_svd, s, Vt = np.linalg.svd(sigma_xy, full_matrices=True)
    rank = int(np.sum(s > RANK_RTOL * s[0])) if s.size and s[0] > 0 else 0
    s = np.where(np.arange(s.size) < rank, s, 0.0)
    U = complement_basis(sigma_x, U_svd[:, :rank])
    V = Vt.T
    m = min(d, p)
    lam = np.einsum("ji,jk,ki->i", U[:, :m], sigma_x, U[:, :m])
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where((s > 0) & (lam > 0), s / lam, 0.0)

    # Σx⁺ from the eigendecomposition, with numpy.linalg.pinv's cut-off.
    inverse = np.where(mu > mu[0] * max(d, 1) * np.finfo(float).eps, 1 / np.where(mu > 0, mu, 1), 0)
    rrr_coef = (Q * inverse) @ (Q.T @ sigma_xy)
    gram = sigma_xy.T @ rrr_coef
    rrr_gain, rrr_basis = np.linalg.eigh((gram + gram.T) / 2)
    rrr_gain, rrr_basis = rrr_gain[::-1].copy(), rrr_basis[:, ::-1].copy()

    sigma_xc = cc = None
    if X_clean is not None:
        X_clean, ec = working("X_clean", np.asarray(X_clean, dtype=np.float64))
        sigma_xc = back("XᵀX_clean/n", X.T @ X_clean / n, ex + ec)
        cc = float(back("tr(X_cleanᵀX_clean)/n", np.sum(X_clean * X_clean) / n, 2 * ec))

    held_out = None
    if X_test is not None and Y_test is not None:
        held_out = _held_out(np.asarray(X_test, dtype=np.float64), Y_test, working, back, d, p)

    # The ε measures are scale-free; every other statistic is scaled back, if representable.
    return Stats(
        sigma_x=back("Σx = XᵀX/n", sigma_x, 2 * ex),
        sigma_xy=back("Σxy = XᵀY/n", sigma_xy, ex + ey),
        yy=float(back("tr(YᵀY)/n", yy, 2 * ey)),
        mu=back("the eigenvalues of Σx", mu, 2 * ex),
        Q=Q,
        U=U,
        V=V,
        s=back("the singular values s_i of Σxy", s, ex + ey, rank),
        lam=back("λ_i = (UᵀΣxU)_ii", lam, 2 * ex, rank),
        rho=back("ρ_i = s_i/λ_i", rho, ey - ex, rank),
        rank=rank,
        eps_a1=eps_a1(sigma_x, U),
        eps_iso=eps_iso(sigma_x),
        rrr_coef=back("Σx⁺Σxy", rrr_coef, ey - ex),
        rrr_basis=rrr_basis,
        rrr_gain=back("the eigenvalues of ΣxyᵀΣx⁺Σxy", rrr_gain, 2 * ey),
        sigma_xc=sigma_xc,
        cc=cc,
        held_out=held_out,
        meta=dict(meta or {}),
    )


def _held_out(X: np.ndarray, Y: np.ndarray, working: Any, back: Any, d: int, p: int) -> HeldOut:
    """:class:`HeldOut` of a test set, computed in float64's safe range as the training's."""
    same = Y is X
    Y = np.asarray(Y, dtype=np.float64)
    shapes_ok = X.ndim == Y.ndim == 2 and X.shape[0] == Y.shape[0]
    if not shapes_ok or (X.shape[1], Y.shape[1]) != (d, p):
        raise ValueError(
            f"the test set must be (n', {d}) and (n', {p}) arrays, got {X.shape} and {Y.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError("the test set has no rows")
    X, ex = working("X_test", X)
    Y, ey = (X, ex) if same else working("Y_test", Y)
    n = X.shape[0]
    sigma_x = X.T @ X / n
    return HeldOut(
        sigma_x=back("X′ᵀX′/n′", (sigma_x + sigma_x.T) / 2, 2 * ex),
        sigma_xy=back("X′ᵀY′/n′", X.T @ Y / n, ex + ey),
        yy=float(back("tr(Y′ᵀY′)/n′", np.sum(Y * Y) / n, 2 * ey)),
        n=n,
    )
