"""The ε > 0 departure law (lindyn.departure): the ε = 0 limit, growth with ε, the fit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_CONFIG

from lindyn import departure as dp
from lindyn import theory
from lindyn.config import default, validated
from lindyn.paths import departure_path
from lindyn.store import write_store

SMALL = {"d": 4, "p": 2, "n": 20, "max_steps": 500}
GRID = [0.0, 1e-3, 1e-2, 0.1]


@pytest.fixture(scope="module")
def study():
    """A small study: four perturbations, two seeds, one depth-2 and one depth-3 cell."""
    return dp.measure(GRID, [0, 1], [2, 3], [0.1], [2.0], **SMALL)


def test_epsilon_zero_limit_is_zero_to_rounding(study):
    zero = study.sel(perturbation=0.0)
    assert float(zero["eps_a1"].max()) < 1e-13
    assert float(zero["u_departure"].max()) < 1e-12
    assert float(np.abs(zero["crossing_shift"]).max()) < 1e-12
    assert int(np.isfinite(zero["crossing_shift"]).sum()) > 0  # crossings were compared
    assert float(zero["bound_violation"].sel(depth=2).max()) < 1e-12
    # ‖W‖² − 2Σuu⁰ + Σ(u⁰)² cancels: the product's floor is √(rounding), documented.
    assert float(zero["product_departure"].max()) < 1e-7
    cells = dp.cell_measures(study).sel(perturbation=0.0)
    for name in dp.MEASURES:
        assert float(cells[name].max()) <= dp.FLOORS[name] * 10, name


def test_departures_grow_with_eps(study):
    cells = dp.cell_measures(study).sortby("perturbation")
    for name in ("u_departure", "crossing_shift_all", "product_departure"):
        values = cells[name].max(("seed", "eta", "delta")).transpose("depth", "perturbation")
        assert np.all(np.diff(values.values, axis=1) > 0), name
    # The law itself: the coordinates depart at second order, the product at first.
    fit = dp.fit_table(study, bootstrap=20)
    pooled = fit[(fit["cell"] == "all") & (fit["depth"] == 2)].set_index("measure")
    assert pooled.loc["u_departure", "alpha"] == pytest.approx(2.0, abs=0.15)
    assert pooled.loc["product_departure", "alpha"] == pytest.approx(1.0, abs=0.15)
    assert pooled.loc["u_departure", "points"] == 6  # 3 perturbations > 0 × 2 seeds


def test_prediction_is_the_exact_recursion(study):
    import xarray as xr

    u = xr.DataArray(
        np.zeros((3, 2, 1, 2)),
        dims=("step", "eta", "delta", "component"),
        coords={"step": [0, 1, 5], "eta": [0.1, 0.2], "delta": [2.0], "component": [1, 2]},
    )
    s, lam = np.array([1.0, 0.5]), np.array([1.0, 0.8])
    predicted = dp.epsilon_zero_prediction(u, s, lam, 2)
    expected = theory.gd_component(s, lam, 2, 0.2, 2.0, 5)
    np.testing.assert_array_equal(predicted.sel(eta=0.2, delta=2.0).values, expected[[0, 1, 5]])


def test_crossing_time_interpolates_between_steps():
    u = np.array([[0.0, 0.9], [0.2, 0.95], [0.6, 1.0], [1.0, 1.0]])
    t = dp.crossing_time(u, np.array([1.0, 1.0]), [0.5, 0.99])
    np.testing.assert_allclose(t[0], [1.75, 0.0])
    np.testing.assert_allclose(t[1], [2 + 0.39 / 0.4, 1 + 0.04 / 0.05])
    assert np.isnan(dp.crossing_time(u[:2], np.array([1.0, 1.0]), [0.5])[0, 0])


def test_fit_recovers_a_known_law():
    rng = np.random.default_rng(3)
    eps = np.repeat(np.geomspace(1e-4, 0.3, 10), 4)
    groups = np.tile([0, 1, 2, 3], 10)
    c = np.array([0.5, 1.0, 2.0, 4.0])[groups]
    y = c * eps**1.7 * (1 + 0.02 * rng.standard_normal(eps.size))
    law, prefactors = dp.fit_power_law(eps, y, groups=groups)
    assert law.alpha == pytest.approx(1.7, abs=3 * law.alpha_se + 1e-3)
    assert 0 < law.alpha_se < 0.01
    np.testing.assert_allclose(prefactors, [0.5, 1.0, 2.0, 4.0], rtol=0.03)
    assert law.c == pytest.approx(4.0, rel=0.03)
    assert law.inverse(0.1) == pytest.approx((0.1 / law.c) ** (1 / law.alpha))
    # Points at the floor are left out, too few points give no fit.
    y[:8] = 1e-15
    assert dp.fit_power_law(eps, y, floor=1e-12, groups=groups)[0].points == eps.size - 8
    assert np.isnan(dp.fit_power_law(eps[:2], y[:2])[0].alpha)


def test_eps_10_is_the_last_grid_value_within_tolerance():
    eps = np.array([0.0, 0.01, 0.1, 0.2])
    values = np.array([[0.0, 0.0], [0.01, np.nan], [0.05, 0.2], [0.01, 0.01]])
    assert dp.eps_10(eps, values, 0.1) == (0.01, False)
    assert dp.eps_10(eps, values, 0.5) == (0.2, True)
    assert dp.eps_10(eps, np.array([[np.inf], [0], [0], [0]]), 0.1) == (0.0, False)


def test_schema_defaults_validate():
    config = validated({k: v for k, v in TINY_CONFIG.items() if k != "departure"})
    section = config["departure"]
    assert section["enabled"] is True
    assert section["perturbation"] == default("departure.perturbation")
    assert 0 in section["perturbation"]
    assert section["tolerance"] == pytest.approx(0.1)
    assert (
        validated({**TINY_CONFIG, "departure": {"perturbation": []}})["departure"]["perturbation"]
        == []
    )
    assert validated(TINY_CONFIG)["departure"]["d"] == 4


def test_report_figure_and_query_from_a_small_store(study, tmp_path):
    from lindyn import plots
    from lindyn.query import query_table
    from lindyn.report.markdown import departure_section

    missing = "\n".join(departure_section(tmp_path))
    assert "No departure store" in missing
    write_store(study, departure_path(tmp_path))
    text = "\n".join(departure_section(tmp_path))
    assert "### The ε > 0 departure law" in text
    assert "| measure | L | α ± s.e." in text
    assert "Theorem 1" in text and "Closing note (depth 2)" in text
    fig = plots.figure_departure(dp.open_departure(departure_path(tmp_path)))
    assert len(fig.axes) == 4
    plots.save_figure(fig, [tmp_path / "fig.png"])
    rows = query_table(tmp_path, "departure", {"depth": ["2"]})
    assert len(rows) == len(GRID) * 2 and set(rows["depth"]) == {2}
    fit = query_table(tmp_path, "departure_fit", {"cell": ["all"]})
    assert set(fit["depth"]) == {2, 3}
