"""Figures and the claims report: built from data, complete, robust to bad runs."""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import TINY_CONFIG, run_snakemake

from lindyn import plots, report
from lindyn.paths import AGGREGATES, aggregate_path
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
    section = text.split("## Claims of the paper", 1)[1].split("\n\n", 2)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in lines
    ]
    header, rows = split[0], split[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


# ------------------------------------------------------------------ fast unit tests


def test_fmt_and_table_never_choke_on_nan():
    assert report._fmt(math.nan) == "n/a"
    assert report._fmt(None) == "n/a"
    assert report._fmt(np.float64(1e-17)) == "1.00e-17"
    assert report._fmt(0.12345) == "0.123"
    table = report._md_table(["a|b", "c"], [["x|y", math.nan]])
    assert "a\\|b" in table and "x\\|y" in table and "n/a" in table


def test_tidy_drops_a_spurious_k_dimension():
    status = xr.DataArray(
        [["converged"] * 3], dims=("depth", "k"), coords={"depth": [2], "k": [1, 2, 3]}
    )
    dist = xr.DataArray([[0.5, 0.2, 0.1]], dims=("depth", "k"), coords=status.coords)
    ds = report.tidy(xr.Dataset({"status": status, "dist_seq": dist}))
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
    res = report.DatasetResults("x", _stats(eps_a1, 1.0))
    claim = report._claim_eps(res, "raw")
    assert claim.verdict_kind == verdict
    assert claim.value == pytest.approx(eps_a1)
    centred = report._claim_eps(res, "centred")  # 0.3 / 0.9 in _stats
    assert centred.verdict_kind == "fails"
    assert centred.value == pytest.approx(1 / 3)


def test_eps_table_and_its_figure(tmp_path):
    results = {
        "a": report.DatasetResults("a", _stats(0.03, 0.98)),
        "b": report.DatasetResults("b", _stats(1e-16, 0.5, "commuting")),
    }
    eps = report.eps_table(results)
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
    assert report.figure_datasets("fig1_flow", datasets) == ["a", "d"]
    assert report.figure_datasets("fig2_autoencoder", datasets) == ["a"]
    assert report.figure_datasets("fig5_theorem3", datasets) == ["c"]
    assert report.figure_datasets("fig7_path", datasets) == ["c", "a", "d"]
    assert report.figure_datasets("fig2_autoencoder", {"d": {"loader": "digits"}}) == []


# ------------------------------------------------------------------ the real workflow


@pytest.mark.slow
def test_every_claim_has_a_number_and_a_verdict(tiny_pipeline):
    text = (tiny_pipeline / "results/report.md").read_text()
    rows = claims_rows(text)
    datasets = list(TINY_CONFIG["datasets"])
    assert {(r["claim"], r["dataset"]) for r in rows} == {(c, d) for c in CLAIMS for d in datasets}
    for row in rows:
        kind = next(v for v in report.VERDICTS if row["verdict"].startswith(v))
        if kind != "not applicable":
            assert row["number"] != "n/a", row
            float(row["number"])
        assert row["evidence"], row
    # The same numbers come out of the library on the same stores.
    results = report.load_results(tiny_pipeline / "results", datasets)
    for claim in report.claims(results):
        (row,) = [r for r in rows if (r["claim"], r["dataset"]) == (claim.claim, claim.dataset)]
        assert row["number"] == report._fmt(claim.value)
        assert row["verdict"] == claim.verdict
    by = {(r["claim"], r["dataset"]): r["verdict"] for r in rows}
    # Data where the theory is exact: the verdicts must say so.
    assert by[("Theorem 3 envelopes", "commuting")] == "holds"
    assert by[("Corollary 3 bracket", "commuting")] == "holds"
    assert by[("Theorem 3 envelopes", "digits")].startswith("not applicable")
    assert by[("Figure 2: denoising by L = 2", "digits")].startswith("not applicable")
    assert "## Provenance" in text and "## Beyond the paper" in text


@pytest.mark.slow
def test_figures_are_pngs_and_pdfs_of_the_expected_size(tiny_pipeline):
    for stem, (kind, _, _) in report.FIGURES.items():
        png = tiny_pipeline / f"results/figures/{stem}.png"
        width, height = plots.FIGURE_SIZES[kind]
        assert png_size(png) == (round(width * plots.DPI), round(height * plots.DPI)), stem
        assert png.stat().st_size > 20_000, f"{stem} looks empty"
        pdf = tiny_pipeline / f"results/figures/{stem}.pdf"
        assert pdf.read_bytes()[:4] == b"%PDF"
        assert (tiny_pipeline / f"results/logs/figures/{stem}.log").exists()
        assert f"figures/{stem}.png" in (tiny_pipeline / "results/report.md").read_text()


@pytest.mark.slow
def test_html_report_includes_the_figures(tiny_pipeline):
    run_snakemake(tiny_pipeline, "--report", "results/report.html")
    html = (tiny_pipeline / "results/report.html").read_text(errors="replace")
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
    datasets = list(TINY_CONFIG["datasets"])
    text = report.build_report(results, datasets, config=TINY_CONFIG)
    excluded = text.split("## Runs excluded or incomplete", 1)[1].split("## Provenance")[0]
    assert re.search(
        r"\| commuting \| 2 \| 3 \| aligned \| 0 \| 0\.2 \| 3 \| diverged \|", excluded
    ), excluded
    assert re.search(
        r"\| commuting \| 1 \| 3 \| aligned \| 0 \| 0\.1 \| 3 \| missing \|", excluded
    ), excluded
    timings = text.split("### Runs and timings", 1)[1]
    assert re.search(r"\| commuting \| 16 \| 14 \| 0 \| 1 \| 1 \|", timings), timings
    assert len(claims_rows(text)) == len(CLAIMS) * len(datasets)
    # A dataset whose aggregate is gone is reported, not fatal.
    (results / "aggregate" / "digits" / "path.zarr.zip").unlink()
    text = report.build_report(results, datasets, config=TINY_CONFIG)
    assert "path.zarr.zip does not exist" in text
    for stem in ("fig4_transitions", "fig5_theorem3", "fig7_path"):
        kind = report.FIGURES[stem][0]
        (png,) = report.make_figure(
            stem, results, TINY_CONFIG["datasets"], [tmp_path / f"{stem}.png"]
        )
        assert png_size(png)[0] == round(plots.FIGURE_SIZES[kind][0] * plots.DPI)
