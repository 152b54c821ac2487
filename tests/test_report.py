"""Figures and the claims report: built from data, complete, robust to bad runs."""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import TINY_CONFIG, run_snakemake

from lindyn import plots, report
from lindyn.config import validated
from lindyn.paths import AGGREGATES, aggregate_path
from lindyn.report import claims as claims_module
from lindyn.report import figures, loading, measures, rules
from lindyn.report.format import fmt, md_table
from lindyn.runs import USABLE_STATUSES
from lindyn.store import open_store, write_store

CLAIMS = [
    "Sequential learning",
    "Theorem 2 step limit",
    "Transition at τ_L(δ)/(η s_i)",
    "Theorem 3 envelopes",
    "Corollary 3 bracket",
    "Step size below eigen-gaps",
    "Path visits W_k^seq",
    "Path visits W_k^RRR",
    "Table 1: ε_A1 ≪ ε_iso (raw)",
    "Table 1: ε_A1 ≪ ε_iso (centred)",
    "Figure 2: denoising by L = 2",
]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def claims_rows(text: str) -> list[dict[str, str]]:
    """The claims table of a report as dicts (unescaping '\\|')."""
    section = text.split("## Claims of the paper", 1)[1].split("\n| claim |", 1)[1]
    lines = ("| claim |" + section.split("\n\n", 1)[0]).splitlines()
    split = [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in lines
    ]
    header, rows = split[0], split[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


# ------------------------------------------------------------------ fast unit tests


def test_fmt_and_table_never_choke_on_nan():
    assert fmt(math.nan) == "n/a"
    assert fmt(None) == "n/a"
    assert fmt(math.inf) == "∞"
    assert fmt(np.float64(1e-17)) == "1.00e-17"
    assert fmt(0.12345) == "0.123"
    table = md_table(["a|b", "c"], [["x|y", math.nan]])
    assert "a\\|b" in table and "x\\|y" in table and "n/a" in table


def test_the_workflow_imports_the_figure_registry_without_the_science_stack():
    code = (
        "import sys; from lindyn.report import FIGURES, figure_inputs, report_targets; "
        "heavy = {'xarray', 'matplotlib', 'pandas', 'lindyn.report.claims'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tidy_drops_a_spurious_k_dimension():
    status = xr.DataArray(
        [["converged"] * 3], dims=("depth", "k"), coords={"depth": [2], "k": [1, 2, 3]}
    )
    dist = xr.DataArray([[0.5, 0.2, 0.1]], dims=("depth", "k"), coords=status.coords)
    ds = loading.tidy(xr.Dataset({"status": status, "dist_seq": dist}))
    assert ds["status"].dims == ("depth",)
    assert ds["dist_seq"].dims == ("depth", "k")


def _stats(eps_a1: float, eps_iso: float, loader: str = "digits") -> xr.Dataset:
    meta = {
        "loader": loader,
        "center": False,
        "eps_by_centring": {
            "raw": {"eps_a1": eps_a1, "eps_iso": eps_iso},
            "centred": {"eps_a1": 0.3, "eps_iso": 0.9},
        },
    }
    return xr.Dataset(
        {
            "eps_a1": eps_a1,
            "eps_iso": eps_iso,
            "s": ("component", [1.0, 0.5]),
            "lam": ("component", [1.0, 0.4]),
        },
        attrs={"dataset_meta": json.dumps(meta)},
    )


@pytest.mark.parametrize(
    ("eps_a1", "verdict"),
    [(0.005, "holds"), (0.05, "holds approximately"), (0.5, "fails")],
)
def test_table1_verdict_follows_the_documented_thresholds(eps_a1, verdict):
    res = loading.DatasetResults("x", _stats(eps_a1, 1.0))
    ctx = claims_module.Context(
        res, rules.Grid((1.0,), (0.1,), 100), 2, np.ones(2), np.ones(2), (1, 2)
    )
    claim = claims_module.table1(ctx, "raw")
    assert claim.agreement.kind == verdict
    assert claim.agreement.value == pytest.approx(eps_a1)
    assert claim.regime.kind == "not a limit"
    centred = claims_module.table1(ctx, "centred")  # 0.3 / 0.9 in _stats
    assert centred.agreement.kind == "fails"  # ε is measured here, not assumed: no departure
    assert centred.agreement.value == pytest.approx(1 / 3)


def test_eps_table_and_its_figure(tmp_path):
    results = {
        "a": loading.DatasetResults("a", _stats(0.03, 0.98)),
        "b": loading.DatasetResults("b", _stats(1e-16, 0.5, "commuting")),
    }
    eps = measures.eps_table(results)
    assert eps["eps_a1"].sel(dataset="a", centring="raw") == pytest.approx(0.03)
    assert eps["eps_iso"].sel(dataset="b", centring="centred") == pytest.approx(0.9)
    png = tmp_path / "eps.png"
    plots.save_figure(plots.figure_eps(eps), [png])
    width, height = plots.FIGURE_SIZES["eps"]
    assert png_size(png) == (round(width * plots.DPI), round(height * plots.DPI))


def test_flow_figure_from_a_spectrum(tmp_path):
    stats = _stats(0.0, 0.5, "autoencoder")
    out = plots.save_figure(
        plots.figure_flow({"toy": stats}, depths=(1, 2)), [tmp_path / "f.png", tmp_path / "f.pdf"]
    )
    assert out[1].read_bytes()[:4] == b"%PDF"
    assert png_size(out[0])[0] == round(plots.FIGURE_SIZES["flow"][0] * plots.DPI)


def test_figures_without_data_say_so_instead_of_failing(tmp_path):
    for fig in (
        plots.figure_autoencoder(None),
        plots.figure_theorem3(None, None, None),
        plots.figure_depth(None),
        plots.figure_path({}, {}, {}),
    ):
        (path,) = plots.save_figure(fig, [tmp_path / "empty.png"])
        assert path.stat().st_size > 0


def test_figure_choice_by_loader():
    datasets = {
        "c": {"loader": "commuting"},
        "a": {"loader": "autoencoder"},
        "d": {"loader": "digits"},
    }
    assert figures.figure_datasets("fig1_flow", datasets) == ["a", "d"]
    assert figures.figure_datasets("fig2_autoencoder", datasets) == ["a"]
    assert figures.figure_datasets("fig5_theorem3", datasets) == ["c"]
    assert figures.figure_datasets("fig7_path", datasets) == ["c", "a", "d"]
    assert figures.figure_datasets("fig8_separation", datasets) == ["c", "d"]
    assert figures.figure_datasets("fig2_autoencoder", {"d": {"loader": "digits"}}) == []


# ------------------------------------------------------------------ the real workflow


@pytest.mark.slow
def test_every_claim_has_both_verdicts_with_their_numbers(tiny_pipeline):
    text = (tiny_pipeline / "results/report.md").read_text()
    rows = claims_rows(text)
    datasets = list(TINY_CONFIG["datasets"])
    assert {(r["claim"], r["dataset"]) for r in rows} == {(c, d) for c in CLAIMS for d in datasets}
    assert list(rows[0]) == ["claim", "dataset", "agreement", "regime", "figure"]
    for row in rows:
        agreement = next(k for k in rules.AGREEMENT_KINDS if row["agreement"].startswith(k))
        regime = next(k for k in rules.REGIME_KINDS if row["regime"].startswith(k))
        if agreement != "not applicable":
            assert re.search(r"[≤>] \d", row["agreement"]), row  # number against tolerance
        if regime in ("shows", "beyond the grid") and "needs" in row["regime"]:
            assert "steps at η" in row["regime"], row
        assert row["figure"].startswith("[fig"), row
    # The same verdicts come out of the library on the same stores.
    results = report.load_results(tiny_pipeline / "results", datasets)
    for claim in claims_module.claims(results, max_steps=TINY_CONFIG["max_steps"]):
        (row,) = [r for r in rows if (r["claim"], r["dataset"]) == (claim.claim, claim.dataset)]
        assert row["agreement"] == claim.agreement.text
        assert row["regime"] == claim.regime.text
        if math.isfinite(claim.agreement.value):
            assert fmt(claim.agreement.value) in row["agreement"]
    by = {(r["claim"], r["dataset"]): r["agreement"] for r in rows}
    # Data where the theory is exact: the verdicts must say so.
    assert by[("Theorem 3 envelopes", "commuting")].startswith("holds:")
    assert by[("Corollary 3 bracket", "commuting")].startswith("holds:")
    # ε > 0: measured against the ε = 0 prediction, never "fails", never "not applicable".
    for claim in CLAIMS[:8]:
        assert not by[(claim, "digits")].startswith(("fails", "not applicable")), claim
    assert by[("Figure 2: denoising by L = 2", "digits")].startswith("not applicable")
    assert "## Provenance" in text and "## Beyond the paper" in text
    for rule in rules.RULES.values():
        assert f"- **{rule.claim}**: {rule.text()}" in text


@pytest.mark.slow
def test_figures_are_pngs_and_pdfs_of_the_expected_size(tiny_pipeline):
    for stem, (kind, _, _) in report.FIGURES.items():
        png = tiny_pipeline / f"results/figures/{stem}.png"
        width, height = plots.FIGURE_SIZES[kind]
        if stem == "fig6_depth":  # one row per dataset drawn
            height *= len(figures.figure_datasets(stem, TINY_CONFIG["datasets"]))
        assert png_size(png) == (round(width * plots.DPI), round(height * plots.DPI)), stem
        # The tiny grid has no initialisation axes: fig11 says so (drawn in test_init_axes).
        if stem != "fig11_init":
            assert png.stat().st_size > 20_000, f"{stem} looks empty"
        pdf = tiny_pipeline / f"results/figures/{stem}.pdf"
        assert pdf.read_bytes()[:4] == b"%PDF"
        assert (tiny_pipeline / f"results/logs/figures/{stem}.log").exists()
        assert f"figures/{stem}.png" in (tiny_pipeline / "results/report.md").read_text()


@pytest.mark.slow
def test_html_report_includes_the_figures(tiny_pipeline):
    # Outside results/: every file there must be a job's declared output.
    run_snakemake(tiny_pipeline, "--report", "report.html")
    html = (tiny_pipeline / "report.html").read_text(errors="replace")
    for stem in report.FIGURES:
        assert f"{stem}.png" in html


def _break_runs(results: Path, dataset: str, cells: dict[str, dict]) -> None:
    """Mark cells of a dataset's aggregated stores with a status and NaN data."""
    for name in AGGREGATES:
        path = aggregate_path(results, dataset, name)
        ds = open_store(path, "aggregated")
        for status, cell in cells.items():
            sel = {k: v for k, v in cell.items() if k in ds["status"].dims}
            ds["status"].loc[sel] = status
            for var in ds.data_vars:
                if ds[var].dtype.kind == "f" and set(sel) <= set(ds[var].dims):
                    ds[var].loc[sel] = np.nan
        write_store(ds, path)


@pytest.mark.slow
def test_diverged_and_missing_runs_are_listed_not_fatal(tiny_pipeline, tmp_path):
    results = tmp_path / "results"
    for sub in ("datasets", "aggregate"):
        shutil.copytree(tiny_pipeline / "results" / sub, results / sub)
    base = dict(width=3, init="aligned", seed=0, delta=3.0)
    _break_runs(
        results,
        "commuting",
        {"diverged": {**base, "depth": 2, "eta": 0.2}, "missing": {**base, "depth": 1, "eta": 0.1}},
    )
    datasets, config = list(TINY_CONFIG["datasets"]), validated(TINY_CONFIG)
    text = report.build_report(results, datasets, config=config)
    excluded = text.split("## Runs excluded or incomplete", 1)[1].split("## Provenance")[0]
    assert re.search(
        r"\| commuting \| 2 \| 3 \| 1 \| aligned \| 0 \| 0\.2 \| 3 \| diverged \|", excluded
    ), excluded
    assert re.search(
        r"\| commuting \| 1 \| 3 \| 1 \| aligned \| 0 \| 0\.1 \| 3 \| missing \|", excluded
    ), excluded
    timings = text.split("### Runs and timings", 1)[1].split("\n\n")[1].splitlines()
    header = [c.strip() for c in timings[0].strip("|").split("|")]
    (row,) = [line for line in timings if line.startswith("| commuting |")]
    counts = dict(zip(header, [c.strip() for c in row.strip("|").split("|")], strict=True))
    assert (counts["runs"], counts["diverged"], counts["missing"]) == ("16", "1", "1"), counts
    assert sum(int(counts[s]) for s in USABLE_STATUSES) == 14, counts
    assert len(claims_rows(text)) == len(CLAIMS) * len(datasets)
    # A dataset whose aggregate is gone is reported (its claims left out), not fatal.
    (results / "aggregate" / "digits" / "path.zarr.zip").unlink()
    text = report.build_report(results, datasets, config=config)
    assert "path.zarr.zip does not exist" in text
    for stem in ("fig4_transitions", "fig5_theorem3", "fig7_path"):
        kind = report.FIGURES[stem][0]
        (png,) = report.make_figure(
            stem, results, TINY_CONFIG["datasets"], [tmp_path / f"{stem}.png"]
        )
        assert png_size(png)[0] == round(plots.FIGURE_SIZES[kind][0] * plots.DPI)
