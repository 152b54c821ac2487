"""The claims report (``results/report.md``), assembled from the other modules.

:func:`build_report` reads, for each dataset, the statistics store and the
aggregated stores (:mod:`lindyn.report.loading`) and writes:

* the claims table: each claim of the paper on every dataset, with its agreement
  verdict (measurements against the theory's prediction at the same cells) and its
  regime verdict (does the limit the paper states show within the grid, and what
  δ, η and step budget the theory says it needs), then each row's evidence and the
  rules, printed from :data:`lindyn.report.rules.RULES`;
* Table 1 (ε_A1 against ε_iso, raw and centred), the figures;
* the beyond-the-paper tables (:mod:`lindyn.report.tables`);
* the runs that are not usable or hit the step budget, and provenance
  (:mod:`lindyn.report.inventory`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lindyn.report import tables
from lindyn.report.claims import Claim, claims
from lindyn.report.figures import FIGURES
from lindyn.report.format import md_table
from lindyn.report.inventory import provenance_section, run_inventory, runs_section
from lindyn.report.loading import load_results
from lindyn.report.measures import eps_table
from lindyn.report.rules import AGREEMENT_KINDS, EPS_ZERO, REGIME_KINDS, RULES
from lindyn.runs import USABLE_STATUSES
from lindyn.store import write_atomically

__all__ = ["build_report", "claims_section"]

CLAIMS_HEADER = ("claim", "dataset", "agreement", "regime", "figure")


def _link(stem: str, figures_dir: Path, out_dir: Path) -> str:
    return f"[{stem}]({os.path.relpath(figures_dir / f'{stem}.png', out_dir)})"


def _tally(kinds: Sequence[str], order: Sequence[str]) -> str:
    return ", ".join(f"{sum(k == kind for k in kinds)} {kind}" for kind in order)


def _grids(rows: Sequence[Claim]) -> dict[str, str]:
    return {c.dataset: c.grid.text() for c in rows}


def claims_section(rows: Sequence[Claim], link: Any = str) -> list[str]:
    """The claims table, the verdict counts, each row's evidence and the rules."""
    lines = [
        "## Claims of the paper",
        "",
        "Two verdicts per claim and dataset. **Agreement**: do the measurements match the "
        "theory's own prediction at the same depth, η, δ and init (the finite-δ gradient "
        "flow, Theorem 3's envelopes, Corollary 3's bracket, the ε = 0 gradient descent)? "
        "A claim *fails* only here, on data where the prediction is exact (ε_A1 = 0); with "
        "ε > 0 the same comparison is a *departure* of the size printed. **Regime**: does "
        "the claim as the paper states it, a limit (δ → ∞, η → 0), show within the grid, "
        "and if not, which δ (per layer; depth-L analogues τ_L(δ_L) = τ_2(δ)), η and step "
        "budget does the theory say it needs?",
        "",
        md_table(
            CLAIMS_HEADER,
            [[c.claim, c.dataset, c.agreement.text, c.regime.text, link(c.figure)] for c in rows],
        ),
        "",
        "The grids the regimes are held against (aligned runs; steps: the runs' budget): "
        + "; ".join(f"{name}: {grid}" for name, grid in _grids(rows).items())
        + ".",
        "",
        "Agreement: " + _tally([c.agreement.kind for c in rows], AGREEMENT_KINDS) + ". "
        "Regime: " + _tally([c.regime.kind for c in rows], REGIME_KINDS) + ".",
        "",
        "### Evidence",
        "",
        *[f"- **{c.claim}**, {c.dataset}: {c.evidence}." for c in rows],
        "",
        "### How verdicts are computed",
        "",
        "Usable runs only (status " + ", ".join(f"`{s}`" for s in USABLE_STATUSES) + "); "
        f"ε = 0 means ε_A1 ≤ {EPS_ZERO:g}. The agreement number and its prose are one value.",
        "",
        *[f"- **{rule.claim}**: {rule.text()}" for rule in RULES.values()],
        "",
    ]
    return lines


def departure_section(results_dir: str | os.PathLike, link: Any = str) -> list[str]:
    """The subsection "The ε > 0 departure law" (:mod:`lindyn.departure`), or what is missing."""
    from lindyn.departure import open_departure, study_fit, theorem1_check
    from lindyn.paths import departure_path
    from lindyn.report.format import fmt

    lines = ["### The ε > 0 departure law", ""]
    path = departure_path(results_dir)
    if not path.exists():
        return [
            *lines,
            f"_No departure store ({path.name}): the study is disabled (config `departure`) "
            "or has not run (rule `departure`)._",
            "",
        ]
    ds = open_departure(path)
    settings = json.loads(ds.attrs["settings"])
    tolerance = float(settings.get("tolerance", 0.1))
    fit = study_fit(ds)
    pooled = fit[fit["cell"] == "all"].set_index(["measure", "depth"])
    lines += [
        f"`commuting` (d = {settings['d']}, p = {settings['p']}, n = {settings['n']}) with its "
        "`perturbation` ‖B‖_F/‖Λ‖_F swept over "
        + ", ".join(f"{v:g}" for v in settings["perturbation"])
        + f" and seeds {settings['seeds']}; aligned init, depth {settings['depth']}, "
        f"η ∈ {settings['eta']}, δ ∈ {settings['delta']}, every step measured against the "
        "exact ε = 0 recursion from the same u_i(0) (`lindyn.departure`). Fit: "
        "log-log least squares over the points above rounding, one α per measure and "
        "depth, one prefactor per (η, δ) cell (the table gives the largest); ε_10% is "
        f"where the departure reaches {tolerance:g}, from the fit and on the grid (ε_A1, "
        f"every smaller perturbation within too). Figure: {link('fig10_departure')}.",
        "",
        tables.departure_law_table(ds),
        "",
    ]
    if 2 in ds["depth"].values:
        check = theorem1_check(ds)
        lines += [
            "Theorem 1 (reconstructed in `lindyn.departure`: ‖W_ε(t) − W_0(t)‖ ≤ ε·C·t·e^{Kt}, "
            "ε = ‖B‖₂, constants not explicit): the product departs as ‖B‖₂^"
            f"{fmt(check.alpha)} ± {fmt(check.alpha_se)}, departure/‖B‖₂ at the two smallest "
            f"perturbations in ratio {fmt(check.linear_ratio)}; the bound holds with K = 0 "
            f"and C = {fmt(check.constant)} on every run and step: "
            + ("**holds** (linear in ε as ε → 0)." if check.holds else "**not confirmed**."),
            "",
        ]
    notes = []
    for measure, what in (("u_departure", "u_i"), ("crossing_shift", "t_i(0.5)")):
        if (measure, 2) not in pooled.index:
            continue
        row = pooled.loc[(measure, 2)]
        grid = (
            f"on the whole grid (up to {fmt(row['eps10_measured'])})"
            if row["whole_grid"]
            else f"up to {fmt(row['eps10_measured'])} on the grid"
        )
        beyond = (
            " (extrapolated past the grid)"
            if row["eps10_fit"] > row["eps10_measured"] and row["whole_grid"]
            else ""
        )
        notes.append(
            f"{what}: departure ≈ {fmt(row['C'])}·ε_A1^{fmt(row['alpha'])} (α ± "
            f"{fmt(row['alpha_se'])}, bootstrap s.d. {fmt(row['alpha_boot_sd'])}; C ± "
            f"{fmt(row['C_se'])}), within {tolerance:.0%} for ε_A1 ≤ {fmt(row['eps10_fit'])} "
            f"by the fit{beyond}, measured within it {grid}"
        )
    if notes:
        lines += ["Closing note (depth 2): " + "; ".join(notes) + ".", ""]
    return lines


def build_report(
    results_dir: str | os.PathLike,
    datasets: Sequence[str],
    out: str | os.PathLike | None = None,
    config: Mapping[str, Any] | None = None,
    figures_dir: str | os.PathLike | None = None,
) -> str:
    """Write the claims report (markdown) from the stores under ``results_dir``.

    Parameters
    ----------
    results_dir : path-like
        The ``results/`` directory.
    datasets : sequence of str
        Dataset names, in report order.
    out : path-like, optional
        Where to write (default ``results_dir/report.md``).
    config : mapping, optional
        The pipeline configuration (for the expected runs, the step budget and
        provenance).
    figures_dir : path-like, optional
        Where the figures are (default ``results_dir/figures``); linked, not read.

    Returns
    -------
    str
        The markdown text.
    """
    results_dir = Path(results_dir)
    out = Path(out) if out is not None else results_dir / "report.md"
    figures_dir = Path(figures_dir) if figures_dir is not None else results_dir / "figures"
    results = load_results(results_dir, datasets)
    problems = [p for r in results.values() for p in r.problems]
    inventory = run_inventory(results, config)
    rows = claims(results, max_steps=config["max_steps"] if config else None)

    def link(stem: str) -> str:
        return _link(stem, figures_dir, out.parent) if stem else ""

    lines = [
        "# lindyn: claims of Gidel, Bach & Lacoste-Julien (2019) against the data",
        "",
        f"_Generated by `lindyn.report` on {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC "
        "from the aggregated stores under `results/`; every number below is computed from "
        "them. Do not edit by hand: rerun the `report` rule._",
        "",
    ]
    if len(inventory):
        counts = inventory["status"].value_counts().to_dict()
        lines += [
            f"{len(results)} dataset(s), {len(inventory)} runs: "
            + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            + ".",
            "",
        ]
    lines += [
        "Conventions: δ is the per-layer initialisation scale (each layer starts at "
        "e^{−δ}, the product at e^{−Lδ}; THEORY §10), so transitions sit at "
        "t/τ_L(δ) = 1/s_i (the paper's per-product δ puts them at 1/(2s_i)). ε are "
        "ratios of Frobenius norms, not squared. Usable runs: status "
        + ", ".join(f"`{s}`" for s in USABLE_STATUSES)
        + ".",
        "",
        *claims_section(rows, link),
        "## Table 1: Assumption 1 against isotropy",
        "",
        "Normalised violations (THEORY §3; Frobenius norms, not squared; squared ratios "
        "in brackets).",
        "",
        md_table(
            [
                "dataset",
                "ε_A1 raw",
                "ε_iso raw",
                "ratio raw",
                "ε_A1 centred",
                "ε_iso centred",
                "ratio centred",
            ],
            tables.eps_rows(eps_table(results)),
        ),
        "",
        f"Figure: {link('fig3_eps')}",
        "",
        "## Figures",
        "",
    ]
    for stem, (_, title, _) in FIGURES.items():
        rel = os.path.relpath(figures_dir / f"{stem}.png", out.parent)
        lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    lines += [
        "### Separation phase diagram: measured against Corollary 3 and the eigen-gap condition",
        "",
        "Depth-2 aligned runs, the first consecutive pairs (i, i+1), f = 0.1: a pair is "
        "separated when t_i(0.9) < t_{i+1}(0.1). Cells separated without Corollary 3's "
        "guarantee, or where the eigen-gap condition fails, are where the condition is "
        f"sufficient but not necessary. Figure: {link('fig8_separation')}.",
        "",
        tables.separation_summary(results),
        "",
        "## Beyond the paper",
        "",
        "### Depth ≥ 3: the τ_L(δ) rescaling",
        "",
        "Median over η and the first min(r, m) components of η s_i t_i(0.5)/τ_L(δ) (tends to "
        "1 as δ grows, THEORY §6) / relative width (t(0.9) − t(0.1))/t(0.5) (tends to 0), "
        "aligned init; in brackets, half-way crossings measured out of those the ε = 0 flow "
        "predicts, and how many of the others the flow puts past the run's stop step (step "
        "budget or convergence) or before it (missed). Figure: "
        f"{link('fig6_depth')}.",
        "",
        tables.depth_table(results),
        "",
        "### The ordering caveat: s_i against s_i²/λ_i",
        "",
        "Gradient dynamics learns components by decreasing s_i, rank-k RRR keeps the largest "
        "s_i²/λ_i (THEORY §8). Where the top-k sets differ, W_k^seq ≠ W_k^RRR and the path "
        "can only visit the first.",
        "",
        tables.ordering_table(results),
        "",
        "### Random against aligned initialisation",
        "",
        "At each depth's reference cell (largest δ, smallest η); random inits have the same "
        "per-layer scale e^{−δ}.",
        "",
        tables.init_table(results),
        "",
        "### The initialisation axes: unbalanced layers and width",
        "",
        "Layer l of L starts at e^{−δ}·ratio^{(L+1−2l)/(2(L−1))} (ratio: first layer's scale "
        "over the last's; the product's scale, and u_i(0) in the aligned init, unchanged), "
        "an imbalance W_lᵀW_l − W_{l+1}W_{l+1}ᵀ that gradient flow conserves (`lindyn.init`); "
        "the random init also runs at widths r ≫ rank Σxy. Sequential: fraction of consecutive "
        "learnable pairs with t_{i+1}(0.1) ≥ t_i(0.5), as in the claims (mean over η and seeds). "
        "Effective rank: exp of the entropy of σ/Σσ of W(t) (its peak is usually W(0)'s, "
        "whose singular values are equal in the aligned init; near 1 at t_1(0.9) when the "
        "first component is learned alone). The claims above use ratio 1 and "
        f"the smallest width. Figure: {link('fig11_init')}.",
        "",
        tables.init_axes_table(results),
        "",
        "### Real data (ε > 0) against the ε = 0 predictions",
        "",
        "Aligned init, usable runs. u_i^(ε=0) is the exact decoupled gradient descent of "
        "THEORY §4 with the dataset's s_i, λ_i and the run's η, δ: what the run would do if "
        "Assumption 1 held exactly (rounding level on exactly commuting data). With ε > 0 "
        "the components couple, u_i tends to the least-squares coordinates rather than "
        "ρ_i, and Theorem 3's envelopes are outside their hypotheses.",
        "",
        tables.departure_table(results),
        "",
        "### Generalisation along the path",
        "",
        "Test loss 1/(2n′)‖Y′ − X′W‖² on each dataset's held-out rows, exact from their "
        "statistics, for every dataset with a test set (config `generalisation`: aligned "
        "paths of each depth at one η and δ, run until they converge or for `max_steps`, "
        "not stopped at the crossings). Each estimator at its best parameter on the test "
        "set (an oracle, the same for all): least squares, ridge over γ/λ_max in "
        "10⁻⁶…10², reduced-rank regression over its rank k, PCA regression over its number "
        "of components; for gradient descent, the path's best logged step (early "
        "stopping), and in brackets that step and the test loss at the path's end. The "
        "path of depth L ≥ 2 visits the reduced-rank solutions in turn: read its "
        "early-stopped test loss against the rrr column; depth 1 against ridge, which "
        "early-stopped gradient descent on a linear model approximates. 'at the end': the "
        "test loss was still falling when the path stopped. "
        f"Figure: {link('fig9_generalisation')}.",
        "",
        tables.generalisation_table(results),
        "",
        *departure_section(results_dir, link),
        "### Early stopping: the best clean-signal error on each path",
        "",
        tables.early_stopping_table(results),
        "",
        *runs_section(inventory, problems),
        *provenance_section(results, inventory, config),
    ]
    text = "\n".join(lines).rstrip() + "\n"
    write_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return text
