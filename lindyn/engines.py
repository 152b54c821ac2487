"""Gradient-descent engines that advance a batch of runs of one shape, step by step.

An engine holds the state of ``R`` runs (same depth and width, each with its own
step size and initial layers) in the eigenbasis of Σx and offers

* ``advance(steps)``: take the steps; return the loss ``(R, steps)`` and the
  component coordinates ``u (R, steps, c)`` of the iterates left behind;
* ``observe()``: the loss ``(R,)`` and ``u (R, c)`` of the current iterate;
* ``products()``: the current products ``W (R, d, p)`` in the working basis;
* ``subset(keep)``: the same engine with only the runs ``keep``, state copied
  bit for bit, so that stopped runs stop costing work and a run's iterates never
  depend on which other runs share its engine.

:class:`NumpyEngine` uses numpy's batched matmuls; :class:`lindyn.fastgd.Sweep`
is the compiled engine (numba). Both produce the iterates of plain full-data GD
(checked against :func:`lindyn.gd.naive_gd` in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from lindyn.gd import EigenProblem, batch_gradients, batch_product

__all__ = ["Engine", "NumpyEngine", "make_engine", "numba_available"]


class Engine(Protocol):
    """What :mod:`lindyn.sweeps` needs of an engine."""

    runs: int

    def advance(self, steps: int) -> tuple[np.ndarray, np.ndarray]: ...

    def observe(self) -> tuple[np.ndarray, np.ndarray]: ...

    def products(self) -> np.ndarray: ...

    def subset(self, keep: np.ndarray) -> Engine: ...


class NumpyEngine:
    """A batch of GD runs advanced with numpy (the engine where numba is missing).

    Parameters
    ----------
    problem : EigenProblem
        The dataset in the eigenbasis of Σx.
    layers0 : sequence of R lists of arrays
        Initial layers of each run in the original input basis.
    etas : sequence of R floats
        Step size of each run.
    """

    def __init__(
        self,
        problem: EigenProblem,
        layers0: Sequence[Sequence[np.ndarray]],
        etas: Sequence[float],
    ) -> None:
        depth = len(layers0[0])
        self.problem = problem
        self.runs = len(layers0)
        self._eta = np.asarray(etas, dtype=np.float64).reshape(self.runs)
        self._layers = [
            np.stack(
                [problem.Q.T @ run[0] if i == 0 else np.asarray(run[i]) for run in layers0]
            ).astype(np.float64)
            for i in range(depth)
        ]

    def _observables(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # UᵀW with one matmul first: a three-operand einsum is a slow nested loop.
        u = np.einsum("rik,ki->ri", self.problem.U_obs.T @ W, self.problem.V_obs)
        return self.problem.loss(W), u

    def advance(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``steps`` steps; loss ``(R, steps)`` and ``u (R, steps, c)`` of the iterates."""
        c = self.problem.U_obs.shape[1]
        loss = np.empty((self.runs, steps))
        u = np.empty((self.runs, steps, c))
        step = self._eta[:, None, None]
        mu = self.problem.mu[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(steps):
                W = batch_product(self._layers)
                loss[:, t], u[:, t] = self._observables(W)
                G = mu * W - self.problem.S
                for layer, grad in zip(self._layers, batch_gradients(self._layers, G), strict=True):
                    layer -= step * grad
        return loss, u

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """Loss ``(R,)`` and ``u (R, c)`` of the current iterate."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._observables(self.products())

    def products(self) -> np.ndarray:
        """Current products ``W (R, d, p)`` in the working input basis."""
        if len(self._layers) == 1:  # a copy, not the state itself
            return self._layers[0].copy()
        with np.errstate(over="ignore", invalid="ignore"):
            return batch_product(self._layers)

    def subset(self, keep: np.ndarray) -> NumpyEngine:
        """The engine with only the runs ``keep`` (indices or a boolean mask)."""
        keep = np.arange(self.runs)[keep]  # integer indices: the state is copied, never a view
        out = object.__new__(NumpyEngine)
        out.problem = self.problem
        out._eta = self._eta[keep]
        out._layers = [layer[keep] for layer in self._layers]
        out.runs = out._eta.size
        return out


def numba_available() -> bool:
    """Whether the compiled engine can be used (numba importable)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def make_engine(
    problem: EigenProblem,
    layers0: Sequence[Sequence[np.ndarray]],
    etas: Sequence[float],
    kernel: str = "auto",
) -> Engine:
    """An engine for a batch of runs.

    Parameters
    ----------
    problem, layers0, etas
        See :class:`NumpyEngine`.
    kernel : {"auto", "numba", "numpy"}
        ``auto`` takes the compiled engine when numba is installed.
    """
    if kernel not in ("auto", "numba", "numpy"):
        raise ValueError(f"kernel must be one of auto, numba, numpy; got {kernel!r}")
    if kernel == "numba" or (kernel == "auto" and numba_available()):
        from lindyn.fastgd import Sweep

        return Sweep(problem, layers0, etas)
    return NumpyEngine(problem, layers0, etas)
