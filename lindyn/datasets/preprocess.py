"""The preprocessing every loader shares: subsample, one-hot, centre, scale, hash.

Order: subsample rows -> convert to float64 (pixels divided by their maximum,
so image data lie in [0, 1]) -> one-hot encode labels -> centre -> scale.

Centring (``center=True``) subtracts the column means of X and of Y. The
clean signal of a denoising autoencoder is centred on *its own* mean, not on
X's: the noisy and the clean data then differ by the noise minus its sample
mean only, and the clean target has no constant offset that no linear map of
centred inputs could reproduce.

Scaling (``scale="unit"``) divides X (and the clean signal) by
``sqrt(λ_max(Σx))``, ``Σx = XᵀX/n``, so that ``λ_max(Σx) = 1``; then Y by the
top singular value ``s_1`` of ``Σxy = XᵀY/n`` (computed after scaling X), so
that ``s_1 = 1``. When the target is the input (autoencoders) Y gets X's factor
and stays equal to X (then ``Σxy = Σx`` and ``s_1 = λ_max = 1`` anyway). Why:
the theory's key quantities are ``η·s_i`` (the time of the i-th transition is
about ``1/(η s_i)`` steps) and ``η·λ_max`` (gradient descent is stable only
when it is small), so after this scaling one grid of step sizes η means the
same thing on every dataset. The factors applied are returned (``x_scale``,
``y_scale``) and recorded in the metadata; ``scale="none"`` records 1.0.
A Σx or Σxy that is zero (to rounding) cannot be scaled and raises
`DatasetError`.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError

__all__ = ["data_hash", "one_hot", "prepare", "select_rows"]

# A norm below this fraction of its natural reference is rounding noise: zero.
_ZERO = 1e-12


def select_rows(total: int, n: int | None, seed: int) -> np.ndarray | None:
    """Pick ``n`` of ``total`` rows without replacement, in their original order.

    Parameters
    ----------
    total : int
        Rows available.
    n : int or None
        Rows wanted; None or ``total`` keeps every row.
    seed : int
        Seed of the draw.

    Returns
    -------
    ndarray of int or None
        Sorted row indices, or None for all rows.

    Raises
    ------
    DatasetError
        If ``n > total``.
    """
    if n is None or n == total:
        return None
    if n > total:
        raise DatasetError(f"option 'n' = {n} exceeds the {total} rows available")
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """One-hot encode class indices.

    Parameters
    ----------
    labels : (n,) integer array
        Class indices in ``[0, classes)``.
    classes : int
        Number of columns.

    Returns
    -------
    (n, classes) float64 array
    """
    Y = np.zeros((labels.size, classes))
    Y[np.arange(labels.size), labels] = 1.0
    return Y


def data_hash(X: np.ndarray, Y: np.ndarray) -> str:
    """Fingerprint of a dataset: sha256 of X's then Y's little-endian float64 bytes.

    Parameters
    ----------
    X, Y : arrays
        The preprocessed data (C order is used whatever the layout).

    Returns
    -------
    str
        The first 16 hex digits.
    """
    digest = hashlib.sha256()
    for array in (X, Y):
        digest.update(np.ascontiguousarray(array, dtype="<f8").data)
    return digest.hexdigest()[:16]


def _rows_as_float(array: np.ndarray, rows: np.ndarray | None, divisor: float) -> np.ndarray:
    out = np.array(array if rows is None else array[rows], dtype=np.float64)
    if divisor != 1.0:
        out /= divisor
    return out


def _top_eigenvalue(X: np.ndarray) -> float:
    """λ_max(XᵀX/n), through the smaller of the two Gram matrices."""
    n, d = X.shape
    gram = X.T @ X if d <= n else X @ X.T
    return float(np.linalg.eigvalsh(gram)[-1]) / n


def _unit_scale(X: np.ndarray, Y: np.ndarray | None, x_norm: float) -> tuple[float, float]:
    """Factors making λ_max(Σx) = 1 and s_1(Σxy) = 1 (see the module docstring)."""
    n = X.shape[0]
    lam = _top_eigenvalue(X)
    if not math.sqrt(max(lam, 0.0)) > _ZERO * x_norm:
        raise DatasetError(
            "scale='unit': Σx = XᵀX/n is zero (every input column is zero"
            + (", or constant and removed by center=True)" if x_norm else ")")
        )
    x_scale = 1.0 / math.sqrt(lam)
    if Y is None:
        return x_scale, x_scale
    s1 = float(np.linalg.norm(X.T @ Y, 2)) * x_scale / n
    # Cauchy-Schwarz: s1 <= ‖X‖₂‖Y‖₂/n = ‖Y‖₂/√n after scaling X; below that by _ZERO: zero.
    if not s1 > _ZERO * float(np.linalg.norm(Y)) / math.sqrt(n):
        raise DatasetError(
            "scale='unit': Σxy = XᵀY/n is zero (the targets are orthogonal to the inputs, "
            "e.g. constant targets with center=True)"
        )
    return x_scale, 1.0 / s1


def prepare(
    raw: Raw, *, n: int | None, seed: int, center: bool, scale: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float, float]:
    """Apply the common preprocessing to a reader's output.

    Parameters
    ----------
    raw : Raw
        What the reader produced.
    n : int or None
        Rows to keep (drawn without replacement); None keeps all.
    seed : int
        Seed of the subsampling.
    center : bool
        Subtract column means.
    scale : {"unit", "none"}
        Scaling (see the module docstring).

    Returns
    -------
    X, Y, X_clean : float64 arrays (X_clean may be None)
        ``Y is X`` when the target is the input.
    x_scale, y_scale : float
        The factors applied to X (and X_clean) and to Y.

    Raises
    ------
    DatasetError
        For an empty dataset, ``n`` too large, or a zero Σx or Σxy with
        ``scale="unit"``.
    """
    if raw.X.ndim != 2 or 0 in raw.X.shape:
        raise DatasetError(f"{raw.source}: no data (inputs of shape {raw.X.shape})")
    rows = select_rows(raw.X.shape[0], n, seed)
    X = _rows_as_float(raw.X, rows, raw.pixel_max)
    X_clean = None if raw.X_clean is None else _rows_as_float(raw.X_clean, rows, raw.pixel_max)
    if raw.labels is not None:
        Y = one_hot(raw.labels if rows is None else raw.labels[rows], raw.classes)
    else:
        Y = None if raw.Y is None else _rows_as_float(raw.Y, rows, 1.0)
    x_norm = float(np.linalg.norm(X)) / math.sqrt(X.shape[0])  # before centring
    if center:
        X -= X.mean(axis=0)
        if X_clean is not None:
            X_clean -= X_clean.mean(axis=0)
        if Y is not None:
            Y -= Y.mean(axis=0)
    x_scale = y_scale = 1.0
    if scale == "unit":
        x_scale, y_scale = _unit_scale(X, Y, x_norm)
        X *= x_scale
        if X_clean is not None:
            X_clean *= x_scale
        if Y is not None:
            Y *= y_scale
    return X, X if Y is None else Y, X_clean, x_scale, y_scale
