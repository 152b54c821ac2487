"""The preprocessing every loader shares: split, subsample, one-hot, centre, scale, hash.

Order: hold out a test set (``test_fraction`` of the rows, drawn with
``split_seed``; or the reader's own test file) -> subsample the training rows
-> convert to float64 (pixels divided by their maximum, so image data lie in
[0, 1]) -> one-hot encode labels -> centre -> scale. The test set is centred
and scaled with the *training* rows' means and factors, as a model trained on
them would see new data; nothing of it enters the training statistics.

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

Data at the edge of float64 (entries like 1e-170 or 1e153, whose products
XᵀX would underflow or overflow) are handled as `floatrange` describes: X, Y
and the clean signal are first multiplied by exact powers of two that bring
their largest |entry| into [1/2, 1), centred and unit-scaled there, so the
result is, to rounding, the one of the same data at a moderate scale, and
identical to the direct computation whenever that stays in range. With
``scale="none"`` they are scaled back, which is refused if the result would
not be representable. NaN or infinite entries and arrays whose largest entry
is subnormal are refused. Every error names the data's source.
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError, describe_source
from lindyn.datasets.floatrange import binary_exponent, check_finite, check_normal, restore

__all__ = ["Prepared", "data_hash", "one_hot", "prepare", "select_rows", "split_rows"]

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


def split_rows(total: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Hold out ``round(fraction · total)`` of ``total`` rows as a test set.

    Parameters
    ----------
    total : int
        Rows available.
    fraction : float
        Share of them held out, in [0, 1); 0 holds out nothing.
    seed : int
        Seed of the draw.

    Returns
    -------
    train, test : ndarray of int, ndarray of int or None
        Sorted row indices; ``test`` is None when nothing is held out.

    Raises
    ------
    DatasetError
        If the split would leave the test or the training set empty.
    """
    if fraction == 0:
        return np.arange(total), None
    held = round(fraction * total)
    if not 0 < held < total:
        raise DatasetError(
            f"option 'test_fraction' = {fraction} of {total} rows leaves "
            f"{total - held} training and {held} test rows; both need at least one"
        )
    test = np.sort(np.random.default_rng(seed).choice(total, size=held, replace=False))
    return np.setdiff1d(np.arange(total), test), test


class Prepared(NamedTuple):
    """What :func:`prepare` returns (float64 arrays; see :class:`lindyn.datasets.Data`)."""

    X: np.ndarray
    Y: np.ndarray
    X_clean: np.ndarray | None
    X_test: np.ndarray | None
    Y_test: np.ndarray | None
    x_scale: float
    y_scale: float


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


def _zero_cause(columns: str, rows: int, before: float, center: bool) -> str:
    """Why Σx or Σxy is zero, given the norm of X or Y before centring."""
    # Without centring this is the only cause: ‖X‖²_F/n = tr(Σx) <= d·λ_max(Σx).
    if not (center and before):
        return f"every {columns} column is zero"
    if rows == 1:
        return "the data have a single row, which center=True turns into zeros"
    return f"every {columns} column is constant, and center=True removed it"


def _unit_scale(
    X: np.ndarray, Y: np.ndarray | None, x_norm: float, y_norm: float, center: bool
) -> tuple[float, float]:
    """Factors making λ_max(Σx) = 1 and s_1(Σxy) = 1 (see the module docstring).

    ``x_norm`` and ``y_norm`` are ``‖X‖_F/√n`` and ``‖Y‖_F/√n`` before centring.
    """
    n = X.shape[0]
    lam = _top_eigenvalue(X)
    if not math.sqrt(max(lam, 0.0)) > _ZERO * x_norm:
        cause = _zero_cause("input", n, x_norm, center)
        raise DatasetError(f"scale='unit': Σx = XᵀX/n is zero ({cause})")
    x_scale = 1.0 / math.sqrt(lam)
    if Y is None:
        return x_scale, x_scale
    s1 = float(np.linalg.norm(X.T @ Y, 2)) * x_scale / n
    y_now = float(np.linalg.norm(Y)) / math.sqrt(n)
    # Cauchy-Schwarz: s1 <= ‖X‖₂‖Y‖₂/n = ‖Y‖₂/√n after scaling X; below that by _ZERO: zero.
    if not s1 > _ZERO * y_now:
        cause = (
            "the targets are orthogonal to the inputs"
            if y_now > _ZERO * y_norm
            else _zero_cause("target", n, y_norm, center)
        )
        raise DatasetError(f"scale='unit': Σxy = XᵀY/n is zero ({cause})")
    return x_scale, 1.0 / s1


def prepare(
    raw: Raw,
    *,
    n: int | None,
    seed: int,
    center: bool,
    scale: str,
    test_fraction: float = 0.0,
    split_seed: int = 0,
) -> Prepared:
    """Apply the common preprocessing to a reader's output.

    Parameters
    ----------
    raw : Raw
        What the reader produced (with its own ``test`` set, if any).
    n : int or None
        Training rows to keep (drawn without replacement); None keeps all.
    seed : int
        Seed of the subsampling.
    center : bool
        Subtract column means (the training rows').
    scale : {"unit", "none"}
        Scaling (see the module docstring).
    test_fraction : float
        Share of the rows held out as a test set before subsampling.
    split_seed : int
        Seed of the split.

    Returns
    -------
    Prepared
        ``Y is X`` (and ``Y_test is X_test``) when the target is the input.
        ``x_scale``, ``y_scale`` are the factors applied to X (and X_clean) and to Y.

    Raises
    ------
    DatasetError
        Naming the data's source (`describe_source`): for an empty dataset,
        ``n`` too large, an empty split, a test file as well as a split, a test
        set of other columns, non-finite or subnormal data, a zero Σx or Σxy
        with ``scale="unit"``, or a result beyond float64's range.
    """
    try:
        return _prepare(raw, n, seed, center, scale, test_fraction, split_seed)
    except DatasetError as err:
        raise DatasetError(f"{describe_source(raw.source)}: {err}") from None


def _training_rows(
    total: int, n: int | None, seed: int, test_fraction: float, split_seed: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The training rows (None: all) and the held-out rows (None: no split)."""
    train, test = split_rows(total, test_fraction, split_seed)
    if test is None:
        return select_rows(total, n, seed), None
    if n is not None and n > train.size:
        raise DatasetError(
            f"option 'n' = {n} exceeds the {train.size} training rows left after holding "
            f"out {test.size} test rows (test_fraction = {test_fraction})"
        )
    picked = select_rows(train.size, n, seed)
    return (train if picked is None else train[picked]), test


def _prepare(
    raw: Raw,
    n: int | None,
    seed: int,
    center: bool,
    scale: str,
    test_fraction: float,
    split_seed: int,
) -> Prepared:
    if raw.X.ndim != 2 or 0 in raw.X.shape:
        raise DatasetError(f"no data (inputs of shape {raw.X.shape})")
    if raw.test is not None and test_fraction:
        raise DatasetError(
            f"option 'test_fraction' = {test_fraction} splits a test set off, but the data "
            "bring their own test file: set test_fraction to 0 or give no test file"
        )
    rows, test_rows = _training_rows(raw.X.shape[0], n, seed, test_fraction, split_seed)

    def rescaled(what: str, array: np.ndarray) -> tuple[np.ndarray, int]:
        # Largest |entry| into [1/2, 1), exactly: no product below can over- or underflow.
        check_finite(what, array, rows)
        check_normal(what, array)
        exponent = binary_exponent(array)
        return np.ldexp(array, -exponent, out=array), exponent

    X, ex = rescaled("input array X", _rows_as_float(raw.X, rows, raw.pixel_max))
    X_clean = ec = None
    if raw.X_clean is not None:
        X_clean, ec = rescaled(
            "clean signal X_clean", _rows_as_float(raw.X_clean, rows, raw.pixel_max)
        )
    Y = ey = None
    if raw.labels is not None:
        Y, ey = one_hot(raw.labels if rows is None else raw.labels[rows], raw.classes), 0
    elif raw.Y is not None:
        Y, ey = rescaled("target array Y", _rows_as_float(raw.Y, rows, 1.0))
    # The test set, at the training data's binary exponents (not its own): one transform.
    X_test, Y_test = _test_arrays(raw, test_rows, X.shape[1], None if Y is None else Y.shape[1])
    if X_test is not None:
        X_test = np.ldexp(X_test, -ex, out=X_test)
        if Y_test is not None and ey:
            Y_test = np.ldexp(Y_test, -ey, out=Y_test)
    root_n = math.sqrt(X.shape[0])
    x_norm = float(np.linalg.norm(X)) / root_n  # before centring
    y_norm = 0.0 if Y is None else float(np.linalg.norm(Y)) / root_n
    if center:
        for array, test in ((X, X_test), (X_clean, None), (Y, Y_test)):
            if array is not None:
                mean = array.mean(axis=0)
                array -= mean
                if test is not None:
                    test -= mean
    if scale == "unit":
        x_factor, y_factor = _unit_scale(X, Y, x_norm, y_norm, center)
        hint = "store the data multiplied by a power of ten nearer their scale"
        x_scale = float(restore("the factor applied to X", x_factor, -ex, hint=hint))
        y_scale = x_scale
        X *= x_factor
        if X_test is not None:
            X_test *= x_factor
        if X_clean is not None:
            X_clean = restore("the scaled clean signal X_clean", X_clean * x_factor, ec - ex)
        if Y is not None:
            y_scale = float(restore("the factor applied to Y", y_factor, -ey, hint=hint))
            Y *= y_factor
            if Y_test is not None:
                Y_test *= y_factor
    else:
        x_scale = y_scale = 1.0
        # Only centring can take the data out of range: |x − mean| <= 2·max|x|.
        after = " after centring" if center else ""
        hint = "use scale='unit', which rescales exactly"
        X = restore(f"input array X{after}", X, ex, hint=hint)
        if X_test is not None:
            X_test = restore(f"test input array X{after}", X_test, ex, hint=hint)
        if X_clean is not None:
            X_clean = restore(f"clean signal X_clean{after}", X_clean, ec, hint=hint)
        if Y is not None:
            Y = restore(f"target array Y{after}", Y, ey, hint=hint)
            if Y_test is not None:
                Y_test = restore(f"test target array Y{after}", Y_test, ey, hint=hint)
    if X_test is not None and Y is None:
        Y_test = X_test
    return Prepared(X, X if Y is None else Y, X_clean, X_test, Y_test, x_scale, y_scale)


def _test_arrays(
    raw: Raw, test_rows: np.ndarray | None, d: int, p: int | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The test set's X and Y (None for an input target) as float64, not yet transformed."""
    source = raw.test if raw.test is not None else (raw if test_rows is not None else None)
    if source is None:
        return None, None
    X = _rows_as_float(source.X, test_rows, source.pixel_max)
    check_finite("test input array X", X)
    if X.ndim != 2 or X.shape[1] != d or X.shape[0] == 0:
        raise DatasetError(f"the test inputs are {X.shape}, the training inputs have {d} columns")
    if p is None:
        return X, None
    if source.labels is not None:
        Y = one_hot(source.labels if test_rows is None else source.labels[test_rows], raw.classes)
    else:
        Y = _rows_as_float(source.Y, test_rows, 1.0)
        check_finite("test target array Y", Y)
    if Y.shape != (X.shape[0], p):
        raise DatasetError(
            f"the test targets are {Y.shape}, expected ({X.shape[0]}, {p}) like the training's"
        )
    return X, Y
