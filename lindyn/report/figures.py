"""The figure registry: which figures exist, which stores each reads, how to draw one.

Imported by the ``Snakefile`` and ``workflow/rules/report.smk`` while Snakemake
builds its DAG: at module level it imports :mod:`lindyn.paths` only;
:func:`make_figure` imports xarray and matplotlib when it is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lindyn.paths import (
    AGGREGATES,
    aggregate_path,
    departure_path,
    generalisation_path,
    stats_path,
)

__all__ = [
    "DEPARTURE_FIGURES",
    "FIGURES",
    "figure_datasets",
    "figure_inputs",
    "make_figure",
    "report_targets",
]

# Figure stem -> (kind in lindyn.plots.FIGURE_SIZES, title, report category). The kind is
# also the suffix of the figure's rule in workflow/rules/report.smk (`figure_{kind}`),
# which the Snakefile relies on to declare those rules local.
FIGURES: dict[str, tuple[str, str, str]] = {
    "fig1_flow": ("flow", "Figure 1: closed-form gradient flow", "Paper"),
    "fig2_autoencoder": ("autoencoder", "Figure 2: GD on the autoencoder", "Paper"),
    "fig3_eps": ("eps", "Table 1: ε_A1 against ε_iso", "Paper"),
    "fig4_transitions": ("transitions", "Measured against predicted transitions", "Theory"),
    "fig5_theorem3": ("theorem3", "Theorem 3 envelopes, Corollary 3 bracket", "Theory"),
    "fig6_depth": ("depth", "Depth ≥ 3: τ_L(δ) rescaling", "Beyond the paper"),
    "fig7_path": ("path", "Path: distance to W_k^seq and W_k^RRR", "Theory"),
    "fig8_separation": (
        "separation",
        "Separation: Corollary 3 and the eigen-gap condition",
        "Theory",
    ),
    "fig9_generalisation": (
        "generalisation",
        "Generalisation: test loss along the path against ridge, RRR and PCA",
        "Beyond the paper",
    ),
    "fig10_departure": ("departure", "The ε > 0 departure law", "Beyond the paper"),
    "fig11_init": ("init", "Initialisation axes: unbalanced layers and width", "Beyond the paper"),
}
# Figures drawn from the departure study's store (lindyn.departure), not from datasets.
DEPARTURE_FIGURES = ("fig10_departure",)


def figure_datasets(figure: str, datasets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Datasets a figure draws, chosen by loader from the config's ``datasets``.

    Figure 1: the first autoencoder and the first real-data set (else the first
    two); Figure 2: the first autoencoder; Figure 5: the first exactly commuting set
    (else the first autoencoder, also ε = 0); Figures 6 and 8: all but the
    autoencoders (ρ_i = 1, near-equal noise s_i), so the real-data verdicts they are
    cited for are drawn; Figure 10: none (it reads the departure store); the others: all.
    """
    by_loader: dict[str, list[str]] = {}
    for name, entry in datasets.items():
        by_loader.setdefault(str(entry.get("loader", "")), []).append(name)
    names = list(datasets)
    synthetic = {"commuting", "autoencoder"}
    real = [n for n in names if str(datasets[n].get("loader", "")) not in synthetic]
    auto = by_loader.get("autoencoder", [])
    if figure == "fig1_flow":
        chosen = auto[:1] + real[:1]
        return chosen or names[:2]
    if figure == "fig2_autoencoder":
        return auto[:1]
    if figure == "fig5_theorem3":
        return (by_loader.get("commuting", []) or auto)[:1]
    if figure in DEPARTURE_FIGURES:
        return []
    if figure in ("fig6_depth", "fig8_separation"):
        return [n for n in names if n not in auto] or auto[:1]
    return names


def figure_inputs(
    figure: str,
    datasets: Mapping[str, Mapping[str, Any]],
    results: str = "results",
    aggregates: bool = True,
    departure: bool = True,
) -> list[str]:
    """The stores a figure reads, as workflow paths (statistics, then aggregates).

    A figure of the departure study reads its store, if the study runs (``departure``);
    without it the figure says what is missing.
    """
    if figure in DEPARTURE_FIGURES:
        return [str(departure_path(results))] if departure else []
    names = figure_datasets(figure, datasets)
    paths = [stats_path(results, name) for name in names]
    if figure == "fig9_generalisation":
        from lindyn.datasets import with_test_sets

        held = with_test_sets({name: datasets[name] for name in names})
        return [str(path) for path in paths] + [
            str(generalisation_path(results, name)) for name in held
        ]
    if aggregates:
        paths += [aggregate_path(results, name, store) for name in names for store in AGGREGATES]
    return [str(path) for path in paths]


def report_targets(results: str = "results") -> list[str]:
    """Every figure (PNG and PDF) and the report, as workflow paths."""
    return [f"{results}/figures/{figure}.{fmt}" for figure in FIGURES for fmt in ("png", "pdf")] + [
        f"{results}/report.md"
    ]


def make_figure(
    figure: str,
    results_dir: str | os.PathLike,
    datasets: Mapping[str, Mapping[str, Any]] | Sequence[str],
    outputs: Sequence[str | os.PathLike],
) -> list[Path]:
    """Draw one figure of :data:`FIGURES` from the stores and save it to ``outputs``.

    Parameters
    ----------
    figure : str
        A key of :data:`FIGURES`.
    results_dir : path-like
        The ``results/`` directory.
    datasets : mapping or sequence
        The config's ``datasets`` (name -> entry with ``loader``), or names only
        (then every figure uses all of them, loaders read from the stores).
    outputs : sequence of path-like
        Files to write (``.png``, ``.pdf``).

    Returns
    -------
    list of Path
        The files written.
    """
    from lindyn import plots
    from lindyn.report.loading import load_results
    from lindyn.report.measures import eps_table, target_norms

    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}; known: {', '.join(FIGURES)}")
    if not isinstance(datasets, Mapping):
        loaded = load_results(results_dir, datasets)
        datasets = {n: {"loader": r.loader} for n, r in loaded.items()}
    names = figure_datasets(figure, datasets)
    results = load_results(results_dir, names)
    first = results[names[0]] if names else None

    if figure in DEPARTURE_FIGURES:
        fig = plots.figure_departure(_departure_or_none(results_dir))
    elif figure == "fig1_flow":
        fig = plots.figure_flow({n: r.stats for n, r in results.items() if r.stats is not None})
    elif figure == "fig2_autoencoder":
        fig = plots.figure_autoencoder(
            first.trajectories if first else None,
            first.stats if first else None,
            name=first.name if first else "autoencoder",
        )
    elif figure == "fig3_eps":
        fig = plots.figure_eps(eps_table(results))
    elif figure == "fig4_transitions":
        fig = plots.figure_transitions(
            {n: r.phase_times for n, r in results.items() if r.phase_times is not None}
        )
    elif figure == "fig5_theorem3":
        fig = plots.figure_theorem3(
            first.trajectories if first else None,
            first.bounds if first else None,
            first.stats if first else None,
            name=first.name if first else "commuting",
        )
    elif figure == "fig6_depth":
        fig = plots.figure_depth({n: (r.stats, r.trajectories) for n, r in results.items()})
    elif figure == "fig11_init":
        from lindyn.report.rules import RULES

        fig = plots.figure_init(
            {n: (r.learning, r.all_trajectories) for n, r in results.items()},
            threshold=RULES["Sequential learning"].threshold,
        )
    elif figure == "fig8_separation":
        fig = plots.figure_separation(
            {n: r.phase_times for n, r in results.items() if r.phase_times is not None},
            {n: r.bounds for n, r in results.items()},
        )
    elif figure == "fig9_generalisation":
        fig = plots.figure_generalisation(
            {n: r.generalisation for n, r in results.items() if r.generalisation is not None}
        )
    else:  # fig7_path
        usable = {
            n: r
            for n, r in results.items()
            if r.trajectories is not None and r.path is not None and r.stats is not None
        }
        norms = {n: target_norms(r.stats, r.trajectories["k"].values) for n, r in usable.items()}
        fig = plots.figure_path(
            {n: r.trajectories for n, r in usable.items()},
            {n: r.path for n, r in usable.items()},
            norms,
        )
    return plots.save_figure(fig, outputs)


def _departure_or_none(results_dir: str | os.PathLike) -> Any:
    """The departure store under ``results_dir``, or None if the study did not run."""
    from lindyn.departure import open_departure

    path = departure_path(results_dir)
    return open_departure(path) if path.exists() else None
