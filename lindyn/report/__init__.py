"""The claims report and the figures, computed from the aggregated stores.

A package of small modules, one concern each:

* :mod:`~lindyn.report.figures` — the figure registry (:data:`FIGURES`) and the
  workflow's paths; imports neither xarray nor matplotlib, so the ``Snakefile``
  can import it while it builds its DAG (:func:`make_figure` imports them when
  called);
* :mod:`~lindyn.report.loading` — reading and verifying one dataset's stores;
* :mod:`~lindyn.report.measures` — what the claims measure on those stores;
* :mod:`~lindyn.report.rules` — each claim's tolerances and regime criterion as
  data, and the verdict functions every claim shares;
* :mod:`~lindyn.report.regimes` — what the theory says a claim needs (δ, η, steps);
* :mod:`~lindyn.report.claims` — one builder per claim: a measurement, two verdicts;
* :mod:`~lindyn.report.tables` — the beyond-the-paper tables
  (:mod:`~lindyn.report.format`: numbers and markdown tables);
* :mod:`~lindyn.report.inventory` — the runs, their statuses and provenance;
* :mod:`~lindyn.report.markdown` — :func:`build_report`, the report itself.

The names below are re-exported lazily: ``from lindyn.report import FIGURES``
loads :mod:`~lindyn.report.figures` only. (``lindyn.report.claims`` is the module;
the function is :func:`lindyn.report.claims.claims`.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FIGURES": "figures",
    "figure_datasets": "figures",
    "figure_inputs": "figures",
    "make_figure": "figures",
    "report_targets": "figures",
    "DatasetResults": "loading",
    "load_dataset": "loading",
    "load_results": "loading",
    "tidy": "loading",
    "eps_table": "measures",
    "target_norms": "measures",
    "RULES": "rules",
    "Verdict": "rules",
    "Claim": "claims",
    "run_inventory": "inventory",
    "build_report": "markdown",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
