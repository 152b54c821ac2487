"""The containers: `Data` (what a loader returns) and `Raw` (what a reader produces)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Data", "Raw"]


@dataclass(frozen=True, eq=False)
class Data:
    """A preprocessed dataset, ready for `lindyn.stats.dataset_stats`.

    The arrays are read-only. When the target is the input (autoencoders),
    ``Y`` is the very same array as ``X``.

    Attributes
    ----------
    X : (n, d) float64 array
        Inputs, one sample a row, after subsampling, centring and scaling.
    Y : (n, p) float64 array
        Targets after the same steps.
    X_clean : (n, d) float64 array or None
        The clean signal of a denoising autoencoder (centred on its own mean,
        scaled by the same factor as ``X``), else None.
    X_test, Y_test : (n', d), (n', p) float64 arrays or None
        The held-out test set, centred and scaled with the training rows' means
        and factors (``Y_test is X_test`` for autoencoders), else None.
    meta : dict
        JSON-serialisable description: ``name``, ``loader``, every option
        resolved, ``n``, ``d``, ``p``, ``x_scale``, ``y_scale``, ``target``,
        ``source`` and ``data_hash``.
    """

    X: np.ndarray
    Y: np.ndarray
    X_clean: np.ndarray | None
    meta: dict[str, Any]
    X_test: np.ndarray | None = None
    Y_test: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Raw:
    """A reader's output, before the common preprocessing.

    Exactly one of ``Y`` (regression targets) and ``labels`` (class indices,
    one-hot encoded after subsampling) is set, or neither when the target is
    the input itself.

    Attributes
    ----------
    X : (N, d) numeric array
        Inputs in their stored type (e.g. uint8 pixels).
    source : str or list of str
        Where the data came from (a description or the files read).
    Y : (N, p) array, optional
        Regression targets.
    labels : (N,) integer array, optional
        Class index of each row, in ``[0, classes)``.
    classes : int
        Number of one-hot columns when ``labels`` is set.
    X_clean : (N, d) array, optional
        Clean signal (denoising autoencoder).
    pixel_max : float
        ``X`` (and ``X_clean``) are divided by this on conversion to float64,
        so that pixel data lie in [0, 1].
    extra : dict
        JSON-serialisable metadata added to (and overriding) the options,
        e.g. a default resolved from the data.
    test : Raw, optional
        A test set of its own (e.g. a user's test file), preprocessed with the
        training rows' centring and scaling; else ``test_fraction`` splits one off.
    """

    X: np.ndarray
    source: str | list[str]
    Y: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: int = 0
    X_clean: np.ndarray | None = None
    pixel_max: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    test: Raw | None = None

    @property
    def target(self) -> str:
        """``"onehot"``, ``"input"`` (autoencoder) or ``"regression"``."""
        if self.labels is not None:
            return "onehot"
        return "input" if self.Y is None else "regression"
