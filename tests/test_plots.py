"""The figures say what the data show: one test per fixed figure problem, on tiny stores.

The stores are built here with the variables and dims of the aggregated ones
(``phase_times``, ``bounds``, ``path``, ``trajectories``), as
:func:`lindyn.report.load_results` hands them to :mod:`lindyn.plots`.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_rgb
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lindyn import plots
from lindyn.runs import FRACTIONS

RUN_DIMS = ("depth", "width", "eta", "delta", "init", "seed")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _grid(**overrides) -> dict[str, list]:
    grid = {
        "depth": [1, 2],
        "width": [3],
        "eta": [0.1, 0.2],
        "delta": [2.0, 4.0],
        "init": ["aligned", "random"],
        "seed": [0],
    }
    return {**grid, **overrides}


def _status(grid: dict[str, list], value: str = "converged") -> xr.DataArray:
    shape = [len(v) for v in grid.values()]
    return xr.DataArray(np.full(shape, value, dtype=object), dims=RUN_DIMS, coords=grid)


def _phase(s: list[float], rho: list[float], **grid_overrides) -> xr.Dataset:
    """A phase_times store whose depth-2 crossings follow the flow exactly (no discretisation).

    ``t(f) = (δ + ½·ln(ρ f/(1 − f)))/(η s)`` at depth 2, the closed form with
    ``u(0) = e^{−2δ}``; depth 1 crosses at ``1/(η s)``.
    """
    grid = _grid(**grid_overrides)
    coords = {**grid, "component": np.arange(1, len(s) + 1), "fraction": list(FRACTIONS)}
    da = {k: xr.DataArray(np.asarray(v), dims=k, coords={k: v}) for k, v in coords.items()}
    s_ = xr.DataArray(np.asarray(s), dims="component", coords={"component": coords["component"]})
    rho_ = s_.copy(data=np.asarray(rho))
    f, eta, delta, depth = da["fraction"], da["eta"], da["delta"], da["depth"]
    two = (delta + 0.5 * np.log(rho_ * f / (1 - f))) / (eta * s_)
    measured = xr.where(depth == 2, two, 1.0 / (eta * s_))
    measured = measured.broadcast_like(da["init"]).broadcast_like(da["seed"])
    measured = measured.broadcast_like(da["width"]).transpose(*RUN_DIMS, "component", "fraction")
    asymptotic = xr.where(depth == 2, delta / (eta * s_), np.nan).broadcast_like(measured)
    return xr.Dataset(
        {
            "t_measured": measured,
            "t_flow": measured.copy(),
            "t_asymptotic": asymptotic,
            "rho": rho_.broadcast_like(measured),
            "s": s_.broadcast_like(measured),
            "status": _status(grid),
        },
        attrs={"eps_a1": 0.0},
    )


def _legend_entries(fig) -> list[tuple[str, object]]:
    legends = {id(leg): leg for leg in fig.legends}
    for ax in fig.axes:
        legends.update({id(c): c for c in ax.get_children() if isinstance(c, Legend)})
    return [
        (text.get_text(), handle)
        for leg in legends.values()
        for handle, text in zip(leg.legend_handles, leg.get_texts(), strict=True)
    ]


def _colour(handle) -> np.ndarray:
    """The colour a reader sees on a legend handle."""
    if isinstance(handle, Patch):
        return np.asarray(handle.get_facecolor()[:3])
    assert isinstance(handle, Line2D)
    if handle.get_marker() in ("", "None", None, " "):
        return np.asarray(to_rgb(handle.get_color()))
    face = handle.get_markerfacecolor()
    shown = handle.get_markeredgecolor() if str(face) == "none" else face
    return np.asarray(to_rgb(shown))


# ------------------------------------------------------------------ figure 4


def test_fig4_legend_no_handle_looks_like_a_depth_it_is_not():
    phase = {"commuting": _phase([1.0, 0.6], [1.0, 0.5]), "digits": _phase([1.0, 0.5], [1, 4])}
    entries = _legend_entries(plots.figure_transitions(phase))
    depth = {label: _colour(h) for label, h in entries if re.fullmatch(r"L = \d+", label)}
    assert set(depth) == {"L = 1", "L = 2"}
    others = [(label, h) for label, h in entries if label not in depth]
    assert {"commuting", "digits"} <= {label for label, _ in others}
    for label, handle in others:
        # Closer than 0.3 in RGB reads as the same colour at legend-marker size.
        nearest = min(np.linalg.norm(_colour(handle) - c) for c in depth.values())
        assert nearest >= 0.3, f"legend entry {label!r} looks like a depth entry"


def test_fig4_offset_panel_puts_the_half_log_rho_correction_on_the_diagonal():
    # ρ ≠ 1: the measured steps sit ½·ln(ρ_i)/δ away from τ_2(δ)/(η s_i), as the flow says.
    phase = {"commuting": _phase([1.0, 0.6, 0.3], [4.0, 0.25, 2.0])}
    fig = plots.figure_transitions(phase)
    offsets = np.concatenate([c.get_offsets() for c in fig.axes[1].collections])
    assert len(offsets) == 3 * 2 * 2  # components × η × δ of the depth-2 aligned runs
    np.testing.assert_allclose(offsets[:, 1], offsets[:, 0], atol=1e-9)
    assert np.ptp(offsets[:, 0]) > 0.3  # the offsets are not all zero: a real test


# ------------------------------------------------------------------ figure 3


def _eps(values: dict[str, tuple[float, float]]) -> xr.Dataset:
    names = list(values)
    a1 = [[values[n][0], 0.3] for n in names]
    iso = [[values[n][1], 0.9] for n in names]
    return xr.Dataset(
        {"eps_a1": (("dataset", "centring"), a1), "eps_iso": (("dataset", "centring"), iso)},
        coords={"dataset": names, "centring": ["raw", "centred"]},
    )


def test_fig3_axis_is_set_by_real_data_and_rounding_is_marked():
    fig = plots.figure_eps(_eps({"commuting": (1e-16, 0.8), "digits": (0.03, 0.98)}))
    (ax,) = fig.axes
    low = ax.get_ylim()[0]
    assert 1e-14 < low < 0.03
    assert any("rounding" in t.get_text() for t in ax.texts)
    # Every real value is labelled with its number, above the axis floor.
    labels = {t.get_text() for t in ax.texts}
    assert {"0.03", "0.98", "0.3", "0.9"} <= labels


# ------------------------------------------------------------------ figure 7


def _path_stores(steps: np.ndarray, ks: list[int]):
    grid = _grid(depth=[1, 2], eta=[0.1], delta=[2.0], init=["aligned"])
    coords = {**grid, "step": steps, "k": ks}
    shape = [len(v) for v in coords.values()]
    # Distance to W_k^seq dips at step 10·k; W_k^RRR is ~100× larger than W(t): flat at 1.
    dips = 0.5 + np.abs(np.log10(np.maximum(steps, 1))[:, None] - np.log10(10 * np.array(ks)))
    seq_norm, rrr_norm = np.array(ks, dtype=float), 100.0 * np.array(ks, dtype=float)
    traj = xr.Dataset(
        {
            "dist_seq": ((*RUN_DIMS, "step", "k"), np.broadcast_to(dips * seq_norm, shape)),
            "dist_rrr": ((*RUN_DIMS, "step", "k"), np.broadcast_to(rrr_norm, shape).copy()),
            "status": _status(grid),
        },
        coords=coords,
    )
    run_k = [*shape[:6], len(ks)]
    path = xr.Dataset(
        {
            f"{var}_{target}": ((*RUN_DIMS, "k"), np.full(run_k, fill))
            for var, fill in (("window_start", np.nan), ("window_end", np.nan))
            for target in ("seq", "rrr")
        }
        | {
            "min_rel_dist_seq": ((*RUN_DIMS, "k"), np.full(run_k, 0.5)),
            "min_rel_dist_rrr": ((*RUN_DIMS, "k"), np.full(run_k, 1.0)),
            "status": _status(grid),
        },
        coords={**grid, "k": ks},
    )
    norms = xr.Dataset({"seq_norm": ("k", seq_norm), "rrr_norm": ("k", rrr_norm)}, coords={"k": ks})
    return traj, path, norms


def test_fig7_draws_no_flat_distance_curve_against_the_step():
    steps = np.array([0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    traj, path, norms = _path_stores(steps, [1, 2, 3])
    fig = plots.figure_path({"real": traj}, {"real": path}, {"real": norms})
    logged = int(np.sum(steps >= 1))
    curves = [
        line
        for ax in fig.axes
        for line in ax.get_lines()
        if len(line.get_xdata()) == logged and line.get_linestyle() != "None"
    ]
    assert curves, "the distance to W_k^seq is drawn against the step"
    for line in curves:
        y = np.asarray(line.get_ydata(), dtype=float)
        assert np.ptp(y) > 1e-3, f"flat curve {line.get_label()!r} at {y[0]:.3g}"
    # The RRR distance still shows, as the closest approach per k, with the norm ratio.
    assert any("W_k^RRR" in line.get_label() for ax in fig.axes for line in ax.get_lines())
    assert any("‖W_k^RRR‖ = 100" in ax.get_title() for ax in fig.axes)


# ------------------------------------------------------------------ figure 1


def _spectrum(eps_a1: float, s=(1.0, 0.5, 0.25), lam=(1.0, 0.4, 0.3)) -> xr.Dataset:
    return xr.Dataset(
        {"eps_a1": eps_a1, "s": ("component", list(s)), "lam": ("component", list(lam))}
    )


def test_fig1_real_data_panel_says_it_is_the_eps_zero_idealisation():
    fig = plots.figure_flow({"exact": _spectrum(1e-16), "digits": _spectrum(0.03)}, depths=(1, 2))
    titles = [ax.get_title() for ax in fig.axes]
    exact, real = titles[0], next(t for t in titles if t.startswith("digits"))
    assert "ε = 0 idealisation" in real and "ε_A1 = 0.03" in real
    assert "idealisation" not in exact


# ------------------------------------------------------------------ figure 2


def _autoencoder_run(delta: float, crossings: list[tuple[float, float, float]]) -> xr.Dataset:
    grid = _grid(eta=[0.1], delta=[delta], init=["aligned"])
    steps = np.array([0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    shape = [len(v) for v in grid.values()]
    n = len(crossings)
    return xr.Dataset(
        {
            "status": _status(grid),
            "nuclear_norm": (
                (*RUN_DIMS, "step"),
                np.broadcast_to(np.linspace(0.0, n, steps.size), [*shape, steps.size]),
            ),
            "recon_error": (
                (*RUN_DIMS, "step"),
                np.broadcast_to(np.linspace(2.0, 0.5, steps.size), [*shape, steps.size]),
            ),
            "crossing_step": (
                (*RUN_DIMS, "component", "fraction"),
                np.broadcast_to(np.asarray(crossings, dtype=float), [*shape, n, 3]),
            ),
        },
        coords={
            **grid,
            "step": steps,
            "component": np.arange(1, n + 1),
            "fraction": list(FRACTIONS),
        },
    )


def test_fig2_promises_unit_steps_only_when_the_transitions_are_apart():
    # Small δ: component 2 starts (t(0.1) = 8) long before component 1 is learned (t(0.9) = 20).
    overlapping = _autoencoder_run(1.0, [(5, 10, 20), (8, 15, 30), (12, 25, 50)])
    fig = plots.figure_autoencoder(overlapping)
    assert "unit steps" not in fig.axes[0].get_title()
    assert "δ = 1" in fig.axes[0].get_title()
    apart = _autoencoder_run(8.0, [(5, 10, 20), (50, 100, 200), (300, 400, 600)])
    assert "unit steps" in plots.figure_autoencoder(apart).axes[0].get_title()


# ------------------------------------------------------------------ figure 6


def test_fig6_draws_one_row_per_dataset_and_keeps_the_single_dataset_call():
    kwargs = {"deltas": (2.0, 4.0), "n_components": 2}
    single = plots.figure_depth(_spectrum(0.0), name="commuting", **kwargs)
    assert len(single.axes) == 3
    assert tuple(single.get_size_inches()) == pytest.approx(plots.FIGURE_SIZES["depth"])
    fig = plots.figure_depth(
        {"commuting": (_spectrum(0.0), None), "digits": (_spectrum(0.03), None)}, **kwargs
    )
    assert len(fig.axes) == 2 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(t.startswith("commuting:") for t in titles) == 3
    assert sum(t.startswith("digits:") for t in titles) == 3
    assert "ε = 0 idealisation" in fig.axes[3].get_ylabel()
    width, height = plots.FIGURE_SIZES["depth"]
    assert tuple(fig.get_size_inches()) == pytest.approx((width, 2 * height))


# ------------------------------------------------------------------ figure 8


def _separation_stores() -> tuple[xr.Dataset, xr.Dataset]:
    """Three components; pair 1–2 separated at δ = 4 only, pair 2–3 always (3 never starts).

    Corollary 3 guarantees pair 1–2 at (δ = 4, η = 0.1) only and does not apply to
    component 3; the eigen-gap margin of pair 1–2 is +0.2 at η = 0.1 and −0.1 at
    η = 0.2, that of pair 2–3 unknown (NaN). Seed 1 is missing.
    """
    grid = _grid(seed=[0, 1])
    phase = _phase([1.0, 0.5, 0.2], [1.0, 1.0, 1.0], seed=[0, 1])
    at = {"depth": 2, "init": "aligned"}
    t = phase["t_measured"].copy()
    t.loc[at] = np.nan
    t.loc[{**at, "component": 1}] = np.array([10.0, 20.0, 30.0])
    t.loc[{**at, "component": 2, "delta": 4.0}] = np.array([40.0, 50.0, 60.0])
    t.loc[{**at, "component": 2, "delta": 2.0}] = np.array([25.0, 50.0, 60.0])
    plus = xr.full_like(t, 50.0)
    plus.loc[{**at, "component": 1, "delta": 4.0, "eta": 0.1}] = 35.0
    minus = xr.full_like(t, 38.0)
    minus.loc[{"component": 3}] = np.nan
    status = _status(grid)
    status.loc[{"seed": 1}] = "missing"
    phase = phase.assign(t_measured=t, t_plus=plus, t_minus=minus, status=status)
    phase.attrs["eps_a1"] = 0.03
    margin = xr.DataArray(
        [[0.2, -0.1], [np.nan, np.nan], [np.nan, np.nan]],
        dims=("component", "eta"),
        coords={"component": [1, 2, 3], "eta": grid["eta"]},
    )
    rest = {k: v for k, v in grid.items() if k not in ("depth", "eta")}
    margin = margin.expand_dims(rest).transpose("component", "eta", *rest)
    return phase, xr.Dataset({"eigengap_margin": margin})


def test_separation_table_keeps_unknowns_unknown():
    phase, bounds = _separation_stores()
    table = plots.separation_table({"digits": phase}, {"digits": bounds})
    flags = ["separated", "guaranteed", "eigengap_holds"]
    assert list(table.columns[:8]) == ["dataset", "pair", "i", "delta", "eta", *flags]
    assert all(table[c].dtype == pd.BooleanDtype() for c in flags)

    def state(value):
        return None if pd.isna(value) else bool(value)

    got = {
        (row.pair, row.delta, row.eta): tuple(state(getattr(row, c)) for c in flags)
        for row in table.itertuples()
    }
    # (separated, guaranteed, eigen-gap condition holds); None: unknown.
    assert got == {
        ("1–2", 2.0, 0.1): (False, False, True),
        ("1–2", 2.0, 0.2): (False, False, False),
        ("1–2", 4.0, 0.1): (True, True, True),
        ("1–2", 4.0, 0.2): (True, False, False),
        # Component 3 never starts, so 2 is learned first; no bracket, no margin: unknown.
        ("2–3", 2.0, 0.1): (True, None, None),
        ("2–3", 2.0, 0.2): (True, None, None),
        ("2–3", 4.0, 0.1): (True, None, None),
        ("2–3", 4.0, 0.2): (True, None, None),
    }
    assert table.loc[table["pair"] == "2–3", "eigengap_margin"].isna().all()


def test_separation_figure_draws_one_panel_per_pair_and_dataset():
    phase, bounds = _separation_stores()
    fig = plots.figure_separation({"a": phase, "b": phase}, {"a": bounds, "b": None}, n_pairs=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 * 2
    assert {ax.get_title().split(",")[0] for ax in panels} == {"a", "b"}
    # Cells (η = 0.1, δ = 4) of pair 1–2: separated and guaranteed; (η = 0.1, δ = 2): neither.
    codes = panels[0].images[0].get_array()
    keys = list(plots.SEPARATION_CATEGORIES)
    assert codes[0, 1] == keys.index((True, True))
    assert codes[0, 0] == keys.index((False, False))
    one = plots.figure_separation({"a": phase}, {"a": bounds}, n_pairs=1)
    assert len([ax for ax in one.axes if ax.images]) == 1
