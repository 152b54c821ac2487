"""What a run is, for every module that makes, stores or reads runs.

A leaf module: the simulator (:mod:`lindyn.sweeps`), the stores, the aggregation,
the figures and the report all import these names from here, and it imports
nothing of lindyn.
"""

from __future__ import annotations

__all__ = [
    "BALANCED",
    "FRACTIONS",
    "GRID_DIMS",
    "MISSING",
    "STATUSES",
    "USABLE_STATUSES",
]

GRID_DIMS = ("depth", "width", "ratio", "eta", "delta", "init", "seed")
"""The axes of a dataset's grid of runs, in the order of the aggregated stores."""

BALANCED = 1.0
"""The per-layer scale ratio of the balanced init (:mod:`lindyn.init`): every layer
at the same scale ``e^{−δ}``, as in the paper. The report's claims are measured on it."""

FRACTIONS = (0.1, 0.5, 0.9)
"""The fractions ``f`` of ``u_i ≥ f·ρ_i`` whose first crossing step every run records."""

USABLE_STATUSES = ("converged", "crossed", "max_steps")
"""Statuses whose measurements enter phase times, bounds, path metrics, figures and claims.

``converged``: the relative excess loss fell below ``tol``; ``crossed``: every
tracked component crossed ``0.9·ρ_i`` (``stop="crossings"``); ``max_steps``: the
run reached its step budget.
"""

STATUSES = (*USABLE_STATUSES, "diverged")
"""Every status a run can end with. A diverged run keeps its trajectory up to its
stop step, but its crossings and distances are NaN."""

MISSING = "missing"
"""The status of a cell of an aggregated grid that is not a run (e.g. the aligned
init at seeds other than 0), or of a cell whose block is not there."""
