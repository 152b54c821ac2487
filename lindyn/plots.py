"""The study's figures: matplotlib (Agg backend), xarray objects in, figures out.

Every ``figure_*`` function takes the aggregated stores (or statistics stores)
as :class:`xarray.Dataset` objects, selects what it needs, and returns a
:class:`matplotlib.figure.Figure` of size :data:`FIGURE_SIZES` at :data:`DPI`;
:func:`save_figure` writes it as PNG and/or PDF. Runs whose ``status`` is not
in :data:`USABLE_STATUSES` (diverged, missing) are never drawn, and a figure whose
data are absent shows a note instead of failing.

Figures (THEORY §10 for the paper's):

1. :func:`figure_flow` — the paper's Figure 1, closed-form gradient flow;
2. :func:`figure_autoencoder` — the paper's Figure 2, GD on the autoencoder;
3. :func:`figure_eps` — Table 1 as a bar chart;
4. :func:`figure_transitions` — measured against predicted transition steps;
5. :func:`figure_theorem3` — Theorem 3's envelopes and Corollary 3's bracket;
6. :func:`figure_depth` — the τ_L(δ) rescaling for L = 2, 3, 4, one row per dataset;
7. :func:`figure_path` — distances to ``W_k^seq`` and ``W_k^RRR`` along the path;
8. :func:`figure_separation` — measured separation of consecutive components over
   (δ, η) against Corollary 3 and the eigen-gap condition (table:
   :func:`separation_table`);
9. :func:`figure_init` — the initialisation axes: effective rank of ``W(t)`` over
   time for several per-layer scale ratios and widths, and the sequential
   fraction against the ratio (table: :func:`init_axes_frame`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator, NullFormatter

from lindyn import flow, regime, theory
from lindyn.runs import BALANCED, GRID_DIMS, USABLE_STATUSES
from lindyn.store import write_atomically

__all__ = [
    "DPI",
    "FIGURE_SIZES",
    "cells",
    "figure_autoencoder",
    "figure_departure",
    "figure_depth",
    "figure_eps",
    "figure_flow",
    "figure_generalisation",
    "figure_init",
    "figure_path",
    "figure_separation",
    "figure_theorem3",
    "figure_transitions",
    "init_axes_frame",
    "pca_oracle_errors",
    "reference_cell",
    "save_figure",
    "separation_table",
    "sequential_onset",
]

DPI = 120
FIGURE_SIZES = {
    "flow": (11.0, 6.5),
    "autoencoder": (11.0, 4.2),
    "eps": (8.0, 4.5),
    "transitions": (11.0, 5.0),
    "theorem3": (12.0, 8.0),
    "depth": (12.0, 4.2),
    "path": (13.0, 9.0),
    "separation": (13.0, 9.0),
    "generalisation": (12.0, 4.0),
    "departure": (12.0, 8.5),
    "init": (13.0, 4.2),
}
DEPTH_COLORS = {
    1: "0.45",
    2: "tab:blue",
    3: "tab:orange",
    4: "tab:green",
    5: "tab:red",
    6: "tab:purple",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
EPS_ZERO = 1e-8  # ε_A1 below this: Assumption 1 holds up to rounding (as lindyn.report.EPS_ZERO)
ROUNDING = 1e-12  # a normalised ε below this is rounding, drawn as "≈ 0"
# Separation of components i and i+1: i at 1 − f of ρ_i before i+1 at f (as lindyn.aggregate).
SEPARATION_FRACTION = 0.1

plt.rcParams.update(
    {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)


# ------------------------------------------------------------------ selection


def depth_color(depth: int) -> str:
    """Colour of a depth, the same in every figure."""
    return DEPTH_COLORS.get(int(depth), f"C{int(depth) % 10}")


def cells(ds: xr.Dataset) -> pd.DataFrame:
    """One row per grid cell of an aggregated store: the grid coordinates and ``status``."""
    dims = [d for d in GRID_DIMS if d in ds["status"].dims]
    frame = ds["status"].to_dataframe().reset_index()
    frame["status"] = frame["status"].astype(str)
    return frame[[*dims, "status"]]


def reference_cell(
    ds: xr.Dataset,
    depth: int,
    init: str = "aligned",
    delta: float | None = None,
    eta: float | None = None,
) -> dict[str, Any] | None:
    """The grid cell closest to the theory's limit among the usable runs.

    Among cells of ``depth`` and ``init`` whose status is in :data:`USABLE_STATUSES`:
    the largest δ (smallest initialisation), then the smallest η (closest to the
    gradient flow), unless given. None if no such run.
    """
    frame = cells(ds)
    frame = frame[
        (frame["depth"] == depth) & (frame["init"] == init) & frame["status"].isin(USABLE_STATUSES)
    ]
    if delta is not None:
        frame = frame[np.isclose(frame["delta"], delta)]
    elif len(frame):
        frame = frame[frame["delta"] == frame["delta"].max()]
    if eta is not None:
        frame = frame[np.isclose(frame["eta"], eta)]
    elif len(frame):
        frame = frame[frame["eta"] == frame["eta"].min()]
    if frame.empty:
        return None
    row = frame.sort_values([d for d in GRID_DIMS if d in frame]).iloc[0]
    return {
        d: row[d].item() if hasattr(row[d], "item") else row[d] for d in GRID_DIMS if d in frame
    }


def _sel(ds: xr.Dataset | xr.DataArray, cell: Mapping[str, Any]):
    return ds.sel({k: v for k, v in cell.items() if k in ds.dims})


def _ok_runs(ds: xr.Dataset, **fixed: Any) -> list[dict[str, Any]]:
    frame = cells(ds)
    frame = frame[frame["status"].isin(USABLE_STATUSES)]
    for key, value in fixed.items():
        frame = frame[frame[key] == value]
    return [
        dict(zip(frame.columns[:-1], row, strict=True))
        for row in frame.drop(columns="status").itertuples(index=False)
    ]


def pca_oracle_errors(stats: xr.Dataset) -> np.ndarray | None:
    """Clean-signal error ``‖X_clean − XW‖²/n`` of rank-k PCA, ``W = Q_k Q_kᵀ``, k = 0…d.

    The best any projector on principal subspaces can do; None if the dataset
    has no clean signal (``sigma_xc``).
    """
    if "sigma_xc" not in stats or "cc" not in stats:
        return None
    sigma_x = np.asarray(stats["sigma_x"])
    sigma_xc = np.asarray(stats["sigma_xc"])
    q = np.asarray(stats["Q"])
    cc = float(stats["cc"])
    # With W = Q_k Q_kᵀ: tr(WᵀΣxc) = Σ_{j≤k} q_jᵀΣxc q_j and tr(WᵀΣxW) = Σ_{j≤k} μ_j.
    cross = np.einsum("ij,ik,kj->j", q, sigma_xc, q)
    quad = np.einsum("ij,ik,kj->j", q, sigma_x, q)
    return (
        cc
        - 2 * np.concatenate([[0.0], np.cumsum(cross)])
        + np.concatenate([[0.0], np.cumsum(quad)])
    )


# ------------------------------------------------------------------ output


def new_figure(kind: str, rows: int = 1, **kwargs: Any) -> Figure:
    """A figure of the size for ``kind`` (``rows`` times its height), constrained layout."""
    width, height = FIGURE_SIZES[kind]
    return plt.figure(figsize=(width, height * rows), dpi=DPI, layout="constrained", **kwargs)


def save_figure(fig: Figure, paths: Iterable[str | Path]) -> list[Path]:
    """Save ``fig`` to each path (format from the suffix), atomically, and close it.

    The PNG is exactly ``figsize × DPI`` pixels (no tight bounding box).
    """
    out = []
    for path in paths:
        path = Path(path)
        fmt = path.suffix.lstrip(".")
        metadata = {"Creator": "lindyn"} if fmt == "png" else None
        write_atomically(
            path,
            lambda tmp, fmt=fmt, metadata=metadata: fig.savefig(
                tmp, format=fmt, dpi=DPI, metadata=metadata
            ),
        )
        out.append(path)
    plt.close(fig)
    return out


def _note(ax, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        wrap=True,
        fontsize=9,
        color="0.3",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def placeholder(kind: str, text: str) -> Figure:
    """A figure that says why it has no data."""
    fig = new_figure(kind)
    _note(fig.add_subplot(), text)
    return fig


def _positive_components(s: np.ndarray, lam: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s > 1e-12 * max(s.max(initial=0.0), 1e-300)) & (lam > 0)


def _eps_a1(ds: xr.Dataset) -> float:
    """ε_A1 of a statistics store (variable) or an aggregated store (attribute); NaN if absent."""
    if "eps_a1" in ds:
        return float(ds["eps_a1"])
    return float(ds.attrs.get("eps_a1", np.nan))


def _idealised(eps_a1: float) -> bool:
    """Whether ε = 0 closed forms only idealise the data (ε_A1 above rounding or unknown)."""
    return not eps_a1 <= EPS_ZERO


def _at_fraction(data: xr.DataArray, fraction: float) -> xr.DataArray:
    """``data`` at the stored fraction nearest to ``fraction``, without that coordinate."""
    return data.sel(fraction=fraction, method="nearest", drop=True)


def _pair_separation(t_high: xr.DataArray, t_low: xr.DataArray) -> xr.DataArray:
    """Whether component i is learned before component i+1 starts, from crossing steps.

    Parameters
    ----------
    t_high, t_low : xarray.DataArray
        First steps with ``u_i ≥ (1 − f)·ρ_i`` and with ``u_i ≥ f·ρ_i``, along
        ``component``; NaN where the run never got there (or is unusable).

    Returns
    -------
    xarray.DataArray
        Along ``component`` = i for the pair (i, i+1), without the last
        component: 1.0 when ``t_i(1−f) < t_{i+1}(f)`` (also when i+1 never starts),
        0.0 when not (also when i never finishes but i+1 starts), NaN when
        neither crossing happened.
    """
    following = t_low.shift(component=-1)
    high, low = t_high.notnull(), following.notnull()
    # A crossing that never happened lies beyond the run: it is later than any that did.
    both = (t_high < following).astype(float)
    out = xr.where(high & low, both, xr.where(high, 1.0, xr.where(low, 0.0, np.nan)))
    return out.isel(component=slice(None, -1))


# ------------------------------------------------------------------ figure 1


def figure_flow(
    spectra: Mapping[str, xr.Dataset],
    depths: Sequence[int] = (1, 2, 3),
    delta: float = 8.0,
    n_points: int = 800,
    max_components: int = 8,
) -> Figure:
    """The paper's Figure 1: norms of the product along the closed-form flow.

    One column per dataset (its statistics store, ``s`` and ``lam``); top row the
    nuclear norm ``Σ u_i``, bottom row the squared Frobenius norm ``Σ u_i²``,
    against ``t/τ_L(δ)`` (L = 1 uses ``τ_2(δ) = δ``, the paper's t/δ). Per-layer
    δ (THEORY §10): transitions at ``t/τ = 1/s_i`` (dotted lines). A dataset
    whose ``eps_a1`` is above rounding (or unknown) is titled as the ε = 0
    idealisation on its spectrum: the closed forms ignore the off-diagonal B.
    """
    if not spectra:
        return placeholder("flow", "no statistics store to draw Figure 1 from")
    fig = new_figure("flow")
    axes = fig.subplots(2, len(spectra), squeeze=False, sharex="col")
    for col, (name, stats) in enumerate(spectra.items()):
        s = np.asarray(stats["s"], dtype=float)
        lam = np.asarray(stats["lam"], dtype=float)
        keep = _positive_components(s, lam)
        s, lam = s[keep], lam[keep]
        if s.size == 0:
            _note(axes[0, col], f"{name}: no component with s > 0")
            _note(axes[1, col], "")
            continue
        # Show the first transitions: components down to 10 % of s_1, at most max_components.
        shown = int(min(max_components, max(1, np.sum(s >= 0.1 * s[0]))))
        x = np.linspace(0.0, 1.3 / s[shown - 1], n_points)
        for depth in depths:
            nuclear, frob = flow.figure1_curves(x, s, lam, depth, delta)
            style = {
                "color": depth_color(depth),
                "lw": 1.8 if depth == 2 else 1.4,
                "ls": "-" if depth <= 2 else "--",
                "label": f"L = {depth}",
            }
            axes[0, col].plot(x, nuclear, **style)
            axes[1, col].plot(x, frob, **style)
        for ax in axes[:, col]:
            for si in s[:shown]:
                ax.axvline(1.0 / si, color="0.6", ls=":", lw=0.8)
        loader = stats.attrs.get("loader") or _meta(stats).get("loader", "")
        kind = "autoencoder, s_i = λ_i, ρ_i = 1" if loader == "autoencoder" else "regression"
        title = f"{name} ({kind})"
        eps = _eps_a1(stats)
        if _idealised(eps):
            # The closed forms decouple only at ε = 0: on real data they use (s_i, λ_i) alone.
            shown_eps = "unknown" if np.isnan(eps) else f"{eps:.2g}"
            title += f"\nε = 0 idealisation on the dataset's spectrum (ε_A1 = {shown_eps})"
        axes[0, col].set_title(title)
        axes[0, col].set_ylabel("nuclear norm ‖W(t)‖_*")
        axes[1, col].set_ylabel("squared Frobenius norm ‖W(t)‖²_F")
        axes[1, col].set_xlabel("rescaled time t / τ_L(δ)  (dimensionless)")
        axes[0, col].legend(loc="upper left", title=f"δ = {delta:g} per layer")
    fig.suptitle(
        "Gradient flow, aligned init, closed forms: L ≥ 2 learns components one by one "
        "(dotted: t/τ = 1/s_i)"
    )
    return fig


def _meta(stats: xr.Dataset) -> dict[str, Any]:
    import json

    try:
        return json.loads(stats.attrs.get("dataset_meta", "{}"))
    except (TypeError, ValueError):
        return {}


# ------------------------------------------------------------------ figure 2


def figure_autoencoder(
    traj: xr.Dataset | None,
    stats: xr.Dataset | None = None,
    depths: Sequence[int] = (1, 2),
    init: str = "aligned",
    eta: float | None = None,
    delta: float | None = None,
    name: str = "autoencoder",
) -> Figure:
    """The paper's Figure 2: GD on the autoencoder, L = 1 against L = 2.

    Left: nuclear (trace) norm of the product; right: clean-signal reconstruction
    error ``recon_error``; both against the step (log axis). The cell is the
    depth-2 :func:`reference_cell` (largest δ, smallest η) unless given; the
    other depths use the same η and δ. With ``stats``, the best rank-k PCA error
    is drawn as a reference. The left title says whether the depth-2 trace norm
    climbs in unit steps at that δ, from the run's own crossing steps: only
    when every pair of consecutive transitions within the run is apart,
    ``t_i(0.9) < t_{i+1}(0.1)``; otherwise how many are, and (with ``stats``)
    how many the ε = 0 gradient flow separates at that δ.
    """
    if traj is None or "recon_error" not in traj:
        return placeholder("autoencoder", "no autoencoder run with a clean signal in this study")
    ref = reference_cell(
        traj, 2 if 2 in traj["depth"].values else int(depths[-1]), init, delta, eta
    )
    if ref is None:
        return placeholder("autoencoder", f"{name}: no usable {init} run")
    fig = new_figure("autoencoder")
    ax_norm, ax_err = fig.subplots(1, 2)
    drawn = False
    for depth in depths:
        if depth not in traj["depth"].values:
            continue
        cell = {**ref, "depth": depth}
        run = _sel(traj, cell)
        if str(run["status"].values) not in USABLE_STATUSES:
            continue
        step = run["step"].values
        keep = (step >= 1) & np.isfinite(run["nuclear_norm"].values)
        style = {"color": depth_color(depth), "lw": 1.8, "label": f"L = {depth}"}
        ax_norm.plot(step[keep], run["nuclear_norm"].values[keep], **style)
        err = run["recon_error"].values
        ax_err.plot(step[keep], err[keep], **style)
        if np.any(np.isfinite(err[keep])):
            best = np.nanargmin(np.where(keep, err, np.nan))
            ax_err.plot(step[best], err[best], "o", color=depth_color(depth), ms=6, mfc="none")
        drawn = True
    if not drawn:
        plt.close(fig)
        return placeholder("autoencoder", f"{name}: no usable run at the reference cell")
    oracle = pca_oracle_errors(stats) if stats is not None else None
    if oracle is not None:
        k = int(np.argmin(oracle))
        ax_err.axhline(oracle[k], color="k", ls=":", lw=1, label=f"best rank-k PCA (k = {k})")
    ax_norm.set_xscale("log")
    ax_err.set_xscale("log")
    ax_err.set_yscale("log")
    ax_norm.set_xlabel("gradient-descent step t")
    ax_err.set_xlabel("gradient-descent step t")
    ax_norm.set_ylabel("trace norm of the product ‖W(t)‖_*  (W, resp. W_1W_2)")
    ax_err.set_ylabel("clean-signal error ‖X_clean − XW(t)‖²_F / n")
    ax_norm.legend(loc="upper left")
    ax_err.legend(loc="lower left")
    two = _sel(traj, {**ref, "depth": 2}) if 2 in traj["depth"].values else None
    ax_norm.set_title(_staircase_title(two, float(ref["delta"]), stats))
    ax_err.set_title("reconstruction of the clean signal (circles: best step)")
    fig.suptitle(
        f"{name}: gradient descent, {init} init, η = {ref['eta']:g}, δ = {ref['delta']:g} per layer"
    )
    return fig


def _staircase_title(run: xr.Dataset | None, delta: float, stats: xr.Dataset | None) -> str:
    """Left title of Figure 2: whether the depth-2 trace norm shows unit steps at this δ.

    Counts the consecutive components that both cross ½ρ within the run and how
    many of those pairs are learned apart, ``t_i(0.9) < t_{i+1}(0.1)``; with
    ``stats``, also how many the ε = 0 flow learns apart at this δ
    (:func:`lindyn.regime.pair_delta`).
    """
    usable = run is not None and str(run["status"].values) in USABLE_STATUSES
    if not usable or "crossing_step" not in run:
        return "trace norm of the product"
    steps = run["crossing_step"]
    half = _at_fraction(steps, 0.5)
    learned = (half.notnull() & half.shift(component=-1).notnull()).isel(component=slice(None, -1))
    apart = _pair_separation(
        _at_fraction(steps, 1 - SEPARATION_FRACTION), _at_fraction(steps, SEPARATION_FRACTION)
    )
    pairs = int(learned.sum())
    separated = int((apart == 1).where(learned, False).sum())
    if pairs == 0:
        return f"trace norm at δ = {delta:g}: fewer than two transitions within the run"
    if separated == pairs:
        return "trace norm: L = 2 climbs in unit steps, one component at a time"
    predicted = ""
    if stats is not None:
        n = steps.sizes["component"]
        needed = regime.pair_delta(
            np.asarray(stats["s"], dtype=float)[:n],
            np.asarray(stats["lam"], dtype=float)[:n],
            2,
            1 - SEPARATION_FRACTION,
            SEPARATION_FRACTION,
        )
        flow_apart = int(np.sum((needed <= delta) & learned.values[: needed.size]))
        predicted = f" (ε = 0 flow: {flow_apart})"
    if separated == 0:
        return (
            f"trace norm at δ = {delta:g}: L = 2 transitions overlap, no staircase yet{predicted}"
        )
    return (
        f"trace norm at δ = {delta:g}: only {separated} of {pairs} L = 2 transitions apart"
        f"{predicted}"
    )


# ------------------------------------------------------------------ figure 3


def figure_eps(eps: xr.Dataset) -> Figure:
    """Table 1 as bars: ε_A1 against ε_iso, raw and centred, per dataset (log y).

    The y-axis starts half a decade below the smallest value above rounding
    (:data:`ROUNDING`), so real-data bars keep their resolution; values at
    rounding level are drawn as short cross-hatched stubs marked "≈ 0 (rounding)".

    Parameters
    ----------
    eps : xarray.Dataset
        Variables ``eps_a1`` and ``eps_iso`` with dims ``(dataset, centring)``,
        ``centring`` in ("raw", "centred"); NaN where not computed.
    """
    if eps.sizes.get("dataset", 0) == 0:
        return placeholder("eps", "no dataset")
    names = [str(n) for n in eps["dataset"].values]
    series = [
        ("eps_a1", "raw", "ε_A1, raw", "tab:blue", None),
        ("eps_iso", "raw", "ε_iso, raw", "tab:orange", None),
        ("eps_a1", "centred", "ε_A1, centred", "tab:blue", "//"),
        ("eps_iso", "centred", "ε_iso, centred", "tab:orange", "//"),
    ]
    series = [entry for entry in series if entry[1] in eps["centring"].values]
    values = {
        (var, centring): np.asarray(eps[var].sel(centring=centring), dtype=float)
        for var, centring, *_ in series
    }
    everything = np.concatenate([v[np.isfinite(v)] for v in values.values()] or [np.array([])])
    if everything.size == 0:
        return placeholder("eps", "no ε computed for any dataset")
    real = everything[everything >= ROUNDING]
    low = 10 ** (np.floor(np.log10(real.min())) - 0.5) if real.size else 1e-3
    stub = 2 * low  # the height of a rounding-level bar: visible, clearly not a value
    fig = new_figure("eps")
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(len(names))
    handles = []
    for j, (var, centring, label, color, hatch) in enumerate(series):
        value = values[var, centring]
        rounding = np.isfinite(value) & (value < ROUNDING)
        style = {"facecolor": color, "alpha": 0.85 if hatch is None else 0.45, "hatch": hatch}
        handles.append(Patch(label=label, edgecolor="k", lw=0.5, **style))
        left = x + (j - (len(series) - 1) / 2) * width
        ax.bar(left, np.where(rounding, np.nan, value), width, edgecolor="k", lw=0.5, **style)
        ax.bar(
            left,
            np.where(rounding, stub, np.nan),
            width,
            facecolor="white",
            edgecolor=color,
            hatch="xxx",
            lw=0.8,
        )
        for xi, vi, ri in zip(left, value, rounding, strict=True):
            if not np.isfinite(vi):
                continue
            ax.annotate(
                "≈ 0 (rounding)" if ri else f"{vi:.2g}",
                (xi, stub if ri else vi),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if ri else 0,
                xytext=(0, 2),
                textcoords="offset points",
            )
    handles.append(
        Patch(facecolor="white", edgecolor="0.3", hatch="xxx", label=f"≈ 0: below {ROUNDING:g}")
    )
    ax.set_yscale("log")
    ax.set_ylim(low, 3)
    ax.set_xticks(x, names)
    ax.set_xlabel("dataset")
    ax.set_ylabel("normalised violation ε (Frobenius ratio, not squared; 1)")
    ax.set_title("Assumption 1 (ε_A1) against isotropic inputs (ε_iso): lower is better")
    fig.legend(handles=handles, ncols=len(handles), loc="outside lower center")
    return fig


# ------------------------------------------------------------------ figure 4


def figure_transitions(phase: Mapping[str, xr.Dataset], fraction: float = 0.5) -> Figure:
    """Measured first-crossing steps against the flow, and the offset from Theorem 2.

    Left: every usable run and component at ``fraction``, measured step against
    the per-component gradient flow (log–log, identity line). Right: aligned
    runs, depth ≥ 2: the measured relative offset from Theorem 2's asymptotic
    step, ``t_i(f)·η s_i/τ_L(δ) − 1``, against its predicted finite-δ correction,
    ``½·ln(ρ_i f/(1 − f))/δ`` for L = 2 (``½·ln ρ_i/δ`` at f = ½, from the
    closed form with ``u_i(0) = e^{−2δ}``) and the flow's ``t_flow/t_asymptotic − 1``
    for L ≥ 3 (it vanishes like ``e^{−(L−2)δ}``); agreement lies on the diagonal,
    the residual is the discretisation (and ε > 0 on real data).

    Colour: depth (one legend, colour patches); marker: dataset (another
    legend), filled for the aligned init and hollow for the random one.
    """
    fig = new_figure("transitions")
    ax_flow, ax_off = fig.subplots(1, 2)
    names = list(phase)
    markers = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(names)}
    lo, hi = np.inf, 0.0
    offsets: dict[int, list[np.ndarray]] = {}
    depths_seen: set[int] = set()
    # Random inits first and faint, aligned ones on top.
    inits = [
        i for i in ("random", "aligned") if any(i in ds["init"].values for ds in phase.values())
    ]
    for init, name in itertools.product(inits, names):
        ds = phase[name]
        if init not in ds["init"].values:
            continue
        aligned = init == "aligned"
        sub = ds.sel(fraction=fraction, method="nearest")
        f = float(sub["fraction"])
        ok = sub["status"].isin(USABLE_STATUSES)
        for depth in sub["depth"].values:
            part = sub.sel(depth=depth, init=init)
            measured = part["t_measured"].where(ok.sel(depth=depth, init=init))
            color = depth_color(int(depth))
            style = {
                "s": 16 if aligned else 10,
                "marker": markers[name],
                "facecolors": color if aligned else "none",
                "edgecolors": color,
                "lw": 0.8,
                "alpha": 0.85 if aligned else 0.35,
                "zorder": 3 if aligned else 2,
            }
            x, y = _paired(part["t_flow"], measured)
            keep = (x > 0) & (y > 0)
            if keep.any():
                ax_flow.scatter(x[keep], y[keep], **style)
                lo = min(lo, x[keep].min(), y[keep].min())
                hi = max(hi, x[keep].max(), y[keep].max())
                depths_seen.add(int(depth))
            if not aligned or depth < 2:
                continue
            asymptotic = part["t_asymptotic"].where(part["t_asymptotic"] > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                if depth == 2:
                    predicted = 0.5 * np.log(part["rho"] * f / (1 - f)) / part["delta"]
                else:
                    predicted = part["t_flow"] / asymptotic - 1
            x, y = _paired(predicted, measured / asymptotic - 1)
            if x.size:
                ax_off.scatter(x, y, **style)
                offsets.setdefault(int(depth), []).append(y - x)
    if not np.isfinite(lo):
        plt.close(fig)
        return placeholder("transitions", "no measured crossing in any usable run")
    ax_flow.plot([lo / 2, hi * 2], [lo / 2, hi * 2], color="k", lw=1, ls="--")
    ax_flow.set_xscale("log")
    ax_flow.set_yscale("log")
    ax_flow.set_xlim(lo / 2, hi * 2)
    ax_flow.set_ylim(lo / 2, hi * 2)
    ax_flow.set_xlabel("gradient-flow crossing time / η  (steps)")
    ax_flow.set_ylabel(f"measured first step with u_i ≥ {fraction:g}·ρ_i  (steps)")
    ax_flow.set_title("against the per-component gradient flow (from each run's u_i(0))")
    if offsets:
        low, high = ax_off.dataLim.x0, ax_off.dataLim.x1
        low, high = min(low, ax_off.dataLim.y0), max(high, ax_off.dataLim.y1)
        pad = 0.05 * (high - low) + 1e-3
        ax_off.plot([low - pad, high + pad], [low - pad, high + pad], color="k", lw=1, ls="--")
        ax_off.set_xlim(low - pad, high + pad)
        ax_off.set_ylim(low - pad, high + pad)
        residual = ", ".join(
            f"L = {d}: {np.median(np.abs(np.concatenate(r))):.2g}"
            for d, r in sorted(offsets.items())
        )
        ax_off.text(
            0.98,
            0.02,
            f"median |measured − predicted|\n{residual}",
            transform=ax_off.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
        )
    else:
        _note(ax_off, "no aligned run of depth ≥ 2")
    log_term = "ρ_i" if np.isclose(fraction, 0.5) else f"ρ_i·{fraction:g}/{1 - fraction:g}"
    ax_off.set_xlabel(
        f"predicted finite-δ offset: ½·ln({log_term})/δ (L = 2), flow quadrature (L ≥ 3)"
    )
    ax_off.set_ylabel("measured offset t_i·η s_i / τ_L(δ) − 1  (1)")
    ax_off.set_title("offset from τ_L(δ)/(η s_i), aligned init: on the diagonal = agreement")
    depth_legend = ax_flow.legend(
        handles=[Patch(color=depth_color(d), label=f"L = {d}") for d in sorted(depths_seen)],
        title="depth (colour)",
        loc="upper left",
    )
    ax_flow.add_artist(depth_legend)
    # One entry per dataset showing both fills, so no marker handle carries a depth's colour.
    handles: list[Any] = [
        (
            Line2D([], [], marker=markers[n], color="k", ls=""),
            Line2D([], [], marker=markers[n], color="k", mfc="none", ls=""),
        )
        for n in names
    ]
    handles.append(Line2D([], [], color="k", ls="--"))
    ax_flow.legend(
        handles=handles,
        labels=[*names, "identity"],
        title="dataset (marker): filled aligned, hollow random",
        handler_map={tuple: HandlerTuple(ndivide=None)},
        loc="lower right",
    )
    return fig


def _paired(x: xr.DataArray, y: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """The finite (x, y) pairs of two arrays broadcast against each other."""
    x, y = xr.broadcast(x, y)
    x_values = np.ravel(x.values)
    y_values = np.ravel(y.transpose(*x.dims).values)
    keep = np.isfinite(x_values) & np.isfinite(y_values)
    return x_values[keep], y_values[keep]


# ------------------------------------------------------------------ figure 5


def figure_theorem3(
    traj: xr.Dataset | None,
    bounds: xr.Dataset | None,
    stats: xr.Dataset | None,
    n_runs: int = 3,
    n_components: int = 3,
    name: str = "commuting",
) -> Figure:
    """Theorem 3 on depth-2 aligned runs of an ε = 0 dataset, and Corollary 3's bracket.

    Top: for up to ``n_runs`` runs (largest δ, increasing η), ``u_i(t)/ρ_i`` with
    its lower and upper envelopes (:func:`lindyn.theory.theorem3_envelopes`).
    Bottom: over (η, δ), the median bracket ratio ``t⁺/t⁻`` at f = 0.5 and the
    largest envelope violation (``bounds.zarr``).
    """
    if traj is None or bounds is None or stats is None or 2 not in traj["depth"].values:
        return placeholder("theorem3", "no depth-2 runs on an ε = 0 dataset in this study")
    fig = new_figure("theorem3")
    columns = max(n_runs, 2)
    grid = fig.add_gridspec(2, 2 * columns)
    ref = reference_cell(traj, 2)
    runs = []
    if ref is not None:
        runs = sorted(
            _ok_runs(traj, depth=2, init="aligned", delta=ref["delta"]), key=lambda c: c["eta"]
        )[:n_runs]
    s_all = np.asarray(stats["s"], dtype=float)
    lam_all = np.asarray(stats["lam"], dtype=float)
    for j in range(columns):
        ax = fig.add_subplot(grid[0, 2 * j : 2 * j + 2])
        if j >= len(runs):
            _note(ax, "no further usable run")
            continue
        run = _sel(traj, runs[j])
        step = run["step"].values
        u = run["u"].values
        c = min(n_components, u.shape[1])
        s, lam = s_all[:c], lam_all[:c]
        rho = s / lam
        dense = np.unique(
            np.concatenate([[0], np.geomspace(1, max(step.max(), 1), 400).astype(int)])
        )
        lower, upper = theory.theorem3_envelopes(dense[:, None], s, lam, u[0, :c], runs[j]["eta"])
        keep = step >= 1
        for i in range(c):
            color = f"C{i}"
            ax.fill_between(
                dense[1:],
                lower[1:, i] / rho[i],
                upper[1:, i] / rho[i],
                color=color,
                alpha=0.2,
                lw=0,
            )
            ax.plot(dense[1:], lower[1:, i] / rho[i], color=color, lw=0.6, ls="--")
            ax.plot(dense[1:], upper[1:, i] / rho[i], color=color, lw=0.6, ls="--")
            ax.plot(
                step[keep],
                u[keep, i] / rho[i],
                "o",
                color=color,
                ms=2.5,
                label=f"u_{i + 1}/ρ_{i + 1}, ηs = {runs[j]['eta'] * s[i]:.2g}",
            )
        ax.set_xscale("log")
        # Zoom on the transitions: from 1 % to 99 % of the targets, with a margin.
        w = u[:, :c] / rho
        moving = step[(step >= 1) & np.any((w > 0.01) & (w < 0.99), axis=1)]
        if moving.size:
            ax.set_xlim(max(1.0, moving.min() / 3), moving.max() * 3)
        ax.set_ylim(-0.05, 1.1)
        ax.set_xlabel("gradient-descent step t")
        ax.set_ylabel("u_i(t) / ρ_i  (1)")
        ax.set_title(f"η = {runs[j]['eta']:g}, δ = {runs[j]['delta']:g}: dots GD, band Theorem 3")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(loc="upper left", fontsize=7)
    two = bounds.sel(depth=2) if "depth" in bounds.dims else bounds
    two = two.sel(init="aligned") if "init" in two.dims else two
    status_ok = two["status"].isin(USABLE_STATUSES)
    ratio = two["bracket_ratio"].where(status_ok)
    violation = two["max_violation"].where(status_ok)
    reduce = [d for d in ratio.dims if d not in ("eta", "delta")]
    ratio = ratio.median(reduce, skipna=True)
    violation = violation.max([d for d in violation.dims if d not in ("eta", "delta")], skipna=True)
    ax_r = fig.add_subplot(grid[1, :columns])
    ax_v = fig.add_subplot(grid[1, columns:])
    _heatmap(
        ax_r,
        ratio.transpose("eta", "delta"),
        "median t⁺/t⁻ at f = 0.5 (1)",
        fmt="{:.3f}",
        log=False,
        cmap="viridis",
    )
    _heatmap(
        ax_v,
        violation.transpose("eta", "delta"),
        "max Theorem 3 violation / ρ_i (1, log colour)",
        fmt="{:.0e}",
        log=True,
        cmap="magma",
    )
    ax_r.set_title("Corollary 3 bracket tightness (1 = exact; ≈ 1 + 1.5ηs)")
    ax_v.set_title("Theorem 3 violations (rounding ≈ 1e-15; n/a: ηs > 1/2)")
    fig.suptitle(
        f"{name}: depth 2, aligned init (ε = 0): Theorem 3 envelopes and Corollary 3 bracket"
    )
    return fig


def _heatmap(ax, data: xr.DataArray, label: str, fmt: str, log: bool, cmap: str) -> None:
    values = np.asarray(data.values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        _note(ax, "no applicable run")
        return
    if log:
        # A fixed range: rounding-level values look alike, real violations stand out.
        shown = np.where(finite, np.clip(values, 1e-18, 1.0), np.nan)
        norm = LogNorm(vmin=1e-18, vmax=1.0)
    else:
        shown = values
        low, high = np.nanmin(values), np.nanmax(values)
        norm = plt.Normalize(low, high if high > low else low + 1e-9)
    image = ax.imshow(shown, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    colormap = plt.get_cmap(cmap)
    eta, delta = data["eta"].values, data["delta"].values
    ax.set_yticks(range(len(eta)), [f"{v:g}" for v in eta])
    ax.set_xticks(range(len(delta)), [f"{v:g}" for v in delta])
    ax.set_ylabel("step size η")
    ax.set_xlabel("initialisation scale δ (per layer)")
    ax.grid(False)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            r, g, b, _ = colormap(norm(shown[i, j]))
            colour = "k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w"
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color=colour)
        else:
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.3")
    plt.colorbar(image, ax=ax, label=label)


# ------------------------------------------------------------------ figure 6


def figure_depth(
    stats: xr.Dataset | Mapping[str, tuple[xr.Dataset | None, xr.Dataset | None]] | None,
    traj: xr.Dataset | None = None,
    depths: Sequence[int] = (2, 3, 4),
    deltas: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    n_components: int = 3,
    name: str = "commuting",
) -> Figure:
    """Rescaled transitions for L = 2, 3, 4 tend to steps at ``T_i = 1/s_i`` as δ grows.

    One row per dataset, one column per depth. Lines: closed-form flow
    ``u_i(τ_L(δ)·t)/ρ_i`` for each δ in ``deltas`` (colour); markers: gradient
    descent of the aligned runs in the trajectories at their own δ (smallest η),
    plotted at ``t = η·step/τ_L(δ)``. On a dataset with ε_A1 above rounding the
    lines are the ε = 0 idealisation on its spectrum and the row says so.

    Parameters
    ----------
    stats : xarray.Dataset or mapping or None
        One dataset's statistics store (then ``traj`` and ``name`` describe it),
        or a mapping ``name -> (statistics store, trajectories or None)``, one row
        each (``traj`` and ``name`` are then ignored). Entries without a
        statistics store are skipped.
    traj : xarray.Dataset, optional
        Trajectories of the single dataset.
    depths, deltas : sequence
        Depths (columns) and the δ of the flow curves.
    n_components : int
        Components drawn, from the largest ``s_i``.
    name : str
        Name of the single dataset.

    Returns
    -------
    matplotlib.figure.Figure
        :data:`FIGURE_SIZES` ``["depth"]`` per row: n datasets make it n times as tall.
    """
    # A Dataset is itself a Mapping: test for it first.
    rows = {name: (stats, traj)} if stats is None or isinstance(stats, xr.Dataset) else stats
    rows = {n: pair for n, pair in rows.items() if pair[0] is not None}
    if not rows:
        return placeholder("depth", "no statistics store")
    gd_deltas = {
        float(c["delta"])
        for _, runs in rows.values()
        if runs is not None
        for c in _ok_runs(runs, init="aligned")
        if c["depth"] in depths
    }
    all_deltas = sorted(set(map(float, deltas)) | gd_deltas)
    norm = LogNorm(vmin=min(all_deltas), vmax=max(all_deltas)) if min(all_deltas) > 0 else None
    cmap = plt.get_cmap("viridis")

    def colour(d: float):
        return cmap(norm(d)) if norm is not None else cmap(0.5)

    fig = new_figure("depth", rows=len(rows))
    axes = fig.subplots(len(rows), len(depths), squeeze=False)
    shown = []
    for row, (label, (spectrum, runs)) in zip(axes, rows.items(), strict=True):
        count = _depth_row(row, spectrum, runs, label, depths, deltas, n_components, colour)
        if count:
            shown.append(count)
    handles, _ = axes[0, 0].get_legend_handles_labels()
    handles.append(
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="", label="GD, aligned (smallest η)")
    )
    handles.append(Line2D([], [], color="k", ls=":", label="T_i = 1/s_i"))
    axes[0, 0].legend(handles=handles, loc="lower right", fontsize=7)
    what = f"first {max(shown, default=0)} components"
    if len(rows) == 1:
        what = f"{next(iter(rows))}: {what}"
    fig.suptitle(
        f"{what}, flow (lines) and GD (circles) against rescaled time; the steps sharpen as δ grows"
    )
    return fig


def _depth_row(
    axes: Sequence[Any],
    stats: xr.Dataset,
    traj: xr.Dataset | None,
    name: str,
    depths: Sequence[int],
    deltas: Sequence[float],
    n_components: int,
    colour: Any,
) -> int:
    """One dataset's row of :func:`figure_depth`; the number of components drawn."""
    s = np.asarray(stats["s"], dtype=float)
    lam = np.asarray(stats["lam"], dtype=float)
    keep = _positive_components(s, lam)
    s, lam = s[keep][:n_components], lam[keep][:n_components]
    if s.size == 0:
        for ax in axes:
            _note(ax, f"{name}: no component with s > 0")
        return 0
    rho = s / lam
    eps = _eps_a1(stats)
    x = np.linspace(0.0, 1.5 / s[-1], 600)
    for ax, depth in zip(axes, depths, strict=True):
        top = 1.1
        for delta in deltas:
            t = float(theory.tau(depth, delta)) * x[:, None]
            u = flow.flow_component(t, s, lam, depth, np.exp(-depth * delta))
            for i in range(s.size):
                ax.plot(
                    x,
                    u[:, i] / rho[i],
                    color=colour(delta),
                    lw=1.2,
                    label=f"δ = {delta:g}" if i == 0 else None,
                )
        if traj is not None and depth in traj["depth"].values:
            runs = _ok_runs(traj, depth=depth, init="aligned")
            for cell in runs:
                if cell["eta"] != min(c["eta"] for c in runs if c["delta"] == cell["delta"]):
                    continue
                run = _sel(traj, cell)
                xs = cell["eta"] * run["step"].values / float(theory.tau(depth, cell["delta"]))
                us = run["u"].values[:, : s.size] / rho
                inside = xs <= x[-1]
                # With ε > 0 GD can overshoot ρ_i: keep those points in view (up to 2ρ_i).
                top = max(top, min(1.05 * np.nanmax(us[inside], initial=0.0), 2.0))
                for i in range(us.shape[1]):
                    ax.plot(
                        xs[inside],
                        us[inside, i],
                        "o",
                        ms=2.5,
                        mfc="none",
                        color=colour(float(cell["delta"])),
                    )
        for si in s:
            ax.axvline(1.0 / si, color="k", ls=":", lw=0.8)
        ax.set_ylim(-0.05, top)
        ax.set_xlabel("rescaled time t / τ_L(δ)  (dimensionless)")
        ax.set_ylabel("u_i / ρ_i  (1)")
        if depth == 2:
            scale = r"$\tau_2 = \delta$"
        elif depth == 3:
            scale = r"$\tau_3 = e^{\delta}$"
        else:
            scale = rf"$\tau_{{{depth}}} = e^{{{depth - 2}\delta}}/{depth - 2}$"
        ax.set_title(f"{name}: L = {depth} ({scale})")
    if _idealised(eps):
        shown_eps = "unknown" if np.isnan(eps) else f"{eps:.2g}"
        axes[0].set_ylabel(f"u_i / ρ_i  (1)\nlines: ε = 0 idealisation (ε_A1 = {shown_eps})")
    return int(s.size)


# ------------------------------------------------------------------ figure 7


def figure_path(
    traj: Mapping[str, xr.Dataset],
    path: Mapping[str, xr.Dataset],
    norms: Mapping[str, xr.Dataset],
    tolerance: float = 0.1,
    max_k: int = 10,
) -> Figure:
    """Distances to ``W_k^seq`` along the path, and the closest approach to both targets.

    One column per dataset, at its depth-2 :func:`reference_cell`. Top: depth 2,
    distance to ``W_k^seq`` against the step; middle: depth 1 (same η, δ), the
    same; each relative to ``‖W_k^seq‖`` (``norms[name]`` has ``seq_norm`` and
    ``rrr_norm`` along ``k``), shaded where within ``tolerance`` (``path.zarr``
    windows). Bottom: the closest approach over the path (``min_rel_dist_seq``,
    ``min_rel_dist_rrr``) against k, for depth 2 to both targets and depth 1 to
    ``W_k^seq``. The distance to ``W_k^RRR`` is not drawn against the step: it
    either repeats the top row (``W_k^RRR = W_k^seq``) or stays flat at ≈ 1
    (on real data ``‖W_k^RRR‖ ≫ ‖W(t)‖``: ``Σx⁺`` weights low-variance
    directions heavily); the bottom row carries both facts, its title the norm
    ratio ``‖W_k^RRR‖/‖W_k^seq‖``.
    """
    names = [n for n in traj if n in path and n in norms]
    if not names:
        return placeholder("path", "no aggregated run")
    fig = new_figure("path")
    axes = fig.subplots(3, len(names), squeeze=False, sharey="row")
    rows = (
        (2, "L = 2: ‖W(t) − W_k^seq‖ / ‖W_k^seq‖"),
        (1, "L = 1: ‖W(t) − W_k^seq‖ / ‖W_k^seq‖"),
    )
    cmap = plt.get_cmap("viridis")
    for col, name in enumerate(names):
        ds, pm, nm = traj[name], path[name], norms[name]
        ref = reference_cell(ds, 2)
        for row, (depth, label) in enumerate(rows):
            ax = axes[row, col]
            if ref is None or depth not in ds["depth"].values:
                _note(ax, f"{name}: no usable depth-{depth} run")
                continue
            cell = {**ref, "depth": depth}
            run = _sel(ds, cell)
            if str(run["status"].values) not in USABLE_STATUSES:
                _note(ax, f"{name}: depth-{depth} run is {run['status'].values}")
                continue
            dist = run["dist_seq"]
            rel = dist / nm["seq_norm"].reindex(k=dist["k"].values)
            ks = [int(k) for k in dist["k"].values if np.isfinite(rel.sel(k=k).values).any()][
                :max_k
            ]
            step = run["step"].values
            keep = step >= 1
            windows = _sel(pm, cell)
            for k in ks:
                colour = cmap((k - 1) / max(len(ks) - 1, 1))
                ax.plot(
                    step[keep],
                    np.clip(rel.sel(k=k).values[keep], 1e-4, None),
                    color=colour,
                    lw=1.2,
                    label=f"k = {k}",
                )
                start = float(windows["window_start_seq"].sel(k=k).values)
                end = float(windows["window_end_seq"].sel(k=k).values)
                if np.isfinite(start) and np.isfinite(end):
                    ax.axvspan(max(start, 1), max(end, 1), color=colour, alpha=0.12, lw=0)
            ax.axhline(tolerance, color="k", ls=":", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 3)
            ax.set_xlabel("gradient-descent step t")
            if col == 0:
                ax.set_ylabel(f"{label}  (1)")
            ax.set_title(f"{name}: L = {depth}, η = {ref['eta']:g}, δ = {ref['delta']:g}")
            if row == 0:
                ax.legend(loc="lower left", fontsize=6, ncols=2)
        _closest_approach(axes[2, col], name, pm, nm, ref, tolerance, max_k)
    axes[2, 0].set_ylabel("closest approach: min_t relative distance  (1)")
    fig.suptitle(
        f"Distance to the sequential and reduced-rank solutions (dotted: tolerance "
        f"{tolerance:g}; shaded: steps within it)"
    )
    return fig


_TARGET_LABELS = {"seq": "W_k^seq", "rrr": "W_k^RRR"}


def _closest_approach(
    ax,
    name: str,
    path: xr.Dataset,
    norms: xr.Dataset,
    ref: Mapping[str, Any] | None,
    tolerance: float,
    max_k: int,
) -> None:
    """Bottom row of :func:`figure_path`: min over the path of each relative distance, by k."""
    if ref is None:
        _note(ax, f"{name}: no usable depth-2 run")
        return
    drawn = False
    for depth, target, ls, marker in (
        (2, "seq", "-", "o"),
        (2, "rrr", "--", "s"),
        (1, "seq", "-", "o"),
    ):
        if depth not in path["depth"].values:
            continue
        cell = _sel(path, {**ref, "depth": depth})
        if str(cell["status"].values) not in USABLE_STATUSES:
            continue
        closest = cell[f"min_rel_dist_{target}"]
        ks = closest["k"].values[np.isfinite(closest.values)][:max_k]
        if ks.size == 0:
            continue
        ax.plot(
            ks,
            np.clip(closest.sel(k=ks).values, 1e-4, None),
            color=depth_color(depth),
            ls=ls,
            marker=marker,
            ms=4,
            mfc="none" if target == "rrr" else depth_color(depth),
            label=f"L = {depth} to {_TARGET_LABELS[target]}",
        )
        drawn = True
    if not drawn:
        _note(ax, f"{name}: no usable reference run")
        return
    ax.axhline(tolerance, color="k", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank k of the target")
    ratio = (norms["rrr_norm"] / norms["seq_norm"]).values
    ratio = ratio[np.isfinite(ratio)][:max_k]
    if "seq_rrr_distance" in norms:
        apart = (norms["seq_rrr_distance"] / norms["seq_norm"]).values[:max_k]
        same = bool(np.all(apart[np.isfinite(apart)] < 1e-6))
    else:
        same = bool(np.allclose(ratio, 1.0))
    if same or ratio.size == 0:
        detail = "W_k^RRR = W_k^seq (dashed on solid)"
    else:
        detail = f"‖W_k^RRR‖ = {ratio.min():.3g} to {ratio.max():.3g} × ‖W_k^seq‖"
    ax.set_title(f"{name}: closest approach\n{detail}")
    ax.legend(loc="lower left", fontsize=6)


# ------------------------------------------------------------------ figure 8

# Cell categories of Figure 8: (measured separated, Corollary 3 guarantees it) -> label, colour.
SEPARATION_CATEGORIES: dict[tuple[bool, bool], tuple[str, str]] = {
    (True, True): ("separated, guaranteed by Corollary 3", "tab:green"),
    (True, False): ("separated, not guaranteed (Corollary 3 loose)", "gold"),
    (False, False): ("not separated, not guaranteed", "0.82"),
    (False, True): ("guaranteed but not separated (bound broken)", "tab:red"),
}


def _separation(phase: xr.Dataset, bounds: xr.Dataset | None, n_pairs: int) -> xr.Dataset | None:
    """Per pair (``component`` = i) and (η, δ): measured, guaranteed, eigen-gap margin.

    Depth 2, aligned init; the other grid axes (width, seed) are reduced with
    "all" over the runs that decide (``min`` of 1.0/0.0, NaN if none does).
    Per pair also the relative gap and ``flow_delta``, the smallest δ from which
    the ε = 0 flow learns the pair apart (:func:`lindyn.regime.pair_delta`).
    """
    if 2 not in phase["depth"].values:
        return None
    two = phase.sel(depth=2, drop=True)
    if "init" in two.dims:
        if "aligned" not in two["init"].values:
            return None
        two = two.sel(init="aligned", drop=True)
    f = SEPARATION_FRACTION
    keep = ("component", "eta", "delta")

    def every(data: xr.DataArray) -> xr.DataArray:
        return data.min([d for d in data.dims if d not in keep])

    crossings = two["t_measured"].where(two["status"].isin(USABLE_STATUSES))
    measured = _pair_separation(_at_fraction(crossings, 1 - f), _at_fraction(crossings, f))
    upper = _at_fraction(two["t_plus"], 1 - f)
    lower = _at_fraction(two["t_minus"], f).shift(component=-1)
    guaranteed = (upper < lower).astype(float).where(upper.notnull() & lower.notnull())
    pairs = slice(None, -1)
    if bounds is not None and "eigengap_margin" in bounds:
        margin = bounds["eigengap_margin"]
        if "init" in margin.dims:
            margin = margin.sel(init="aligned", drop=True)
        # A function of s and η only: identical across runs, any non-NaN value will do.
        margin = margin.isel(component=pairs).max([d for d in margin.dims if d not in keep])
    else:
        margin = xr.full_like(every(measured), np.nan)
    # The spectra are broadcast over the runs in the store: one value per component.
    s = two["s"].max([d for d in two["s"].dims if d != "component"])
    lam = s / two["rho"].max([d for d in two["rho"].dims if d != "component"])
    apart = regime.pair_delta(s.values, lam.values, 2, 1 - f, f)
    out = xr.Dataset(
        {
            "separated": every(measured),
            "guaranteed": every(guaranteed.isel(component=pairs)),
            "eigengap_margin": margin,
            "gap": (s - s.shift(component=-1)).isel(component=pairs) / s.isel(component=pairs),
            "flow_delta": ("component", apart),
        }
    )
    return out.isel(component=slice(None, n_pairs)).transpose("component", "eta", "delta")


def _nullable(values: np.ndarray) -> pd.arrays.BooleanArray:
    """1.0/0.0/NaN as a pandas boolean array with <NA> for NaN (never False)."""
    values = np.asarray(values, dtype=float)
    return pd.array([None if np.isnan(v) else bool(v) for v in values], dtype="boolean")


def separation_table(
    phase: Mapping[str, xr.Dataset],
    bounds: Mapping[str, xr.Dataset | None],
    n_pairs: int = 4,
) -> pd.DataFrame:
    """Separation of consecutive components over (δ, η): measured, guaranteed, eigen-gap.

    Depth-2 runs with the aligned init. For the pair (i, i+1), with f = 0.1:

    - ``separated``: measured, ``t_i(1−f) < t_{i+1}(f)`` from ``t_measured``
      (also when i+1 never reaches f within the run); <NA> if no usable run
      decides;
    - ``guaranteed``: Corollary 3, ``t_i⁺(1−f) < t_{i+1}⁻(f)`` from ``t_plus``
      and ``t_minus``; <NA> where the bracket does not apply (ηs > ½, no run);
    - ``eigengap_holds``: ``eigengap_margin > 0`` (bounds store); <NA> where
      the margin is NaN;
    - ``flow_delta``: the smallest δ from which the ε = 0 gradient flow learns
      the pair apart, ``t_{i+1}(f) > t_i(1−f)`` (:func:`lindyn.regime.pair_delta`;
      inf if never): the finite-δ requirement the eigen-gap condition ignores.

    Runs that differ only in width or seed must all agree to count as True.

    Parameters
    ----------
    phase : mapping
        Dataset name -> aggregated ``phase_times`` store.
    bounds : mapping
        Dataset name -> aggregated ``bounds`` store (None or absent: margins <NA>).
    n_pairs : int
        Pairs (1, 2), …, (n_pairs, n_pairs + 1) at most.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``pair`` ("i–i+1"), ``i``, ``delta``, ``eta``,
        ``separated``, ``guaranteed``, ``eigengap_holds`` (pandas ``boolean``),
        ``eigengap_margin`` and ``flow_delta`` (float); one row per dataset,
        pair, δ and η.
    """
    frames = []
    for name, ds in phase.items():
        sep = _separation(ds, bounds.get(name), n_pairs)
        if sep is None:
            continue
        frame = sep.drop_vars("gap").to_dataframe().reset_index()
        frames.append(
            pd.DataFrame(
                {
                    "dataset": name,
                    "pair": [f"{i}–{i + 1}" for i in frame["component"]],
                    "i": frame["component"].astype(int),
                    "delta": frame["delta"].astype(float),
                    "eta": frame["eta"].astype(float),
                    "separated": _nullable(frame["separated"]),
                    "guaranteed": _nullable(frame["guaranteed"]),
                    "eigengap_holds": _nullable(
                        np.where(
                            frame["eigengap_margin"].isna(), np.nan, frame["eigengap_margin"] > 0
                        )
                    ),
                    "eigengap_margin": frame["eigengap_margin"].astype(float),
                    "flow_delta": frame["flow_delta"].astype(float),
                }
            )
        )
    columns = [
        "dataset",
        "pair",
        "i",
        "delta",
        "eta",
        "separated",
        "guaranteed",
        "eigengap_holds",
        "eigengap_margin",
        "flow_delta",
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def figure_separation(
    phase: Mapping[str, xr.Dataset],
    bounds: Mapping[str, xr.Dataset | None],
    n_pairs: int = 4,
) -> Figure:
    """Separation phase diagram: per dataset and pair (i, i+1), measured against guaranteed.

    One row per dataset, one panel per pair of the first ``n_pairs + 1``
    components; each panel is the (δ, η) grid of depth-2 aligned runs. Cell
    colour: measured separation ``t_i(0.9) < t_{i+1}(0.1)`` against Corollary 3's
    guarantee ``t_i⁺(0.9) < t_{i+1}⁻(0.1)`` (:data:`SEPARATION_CATEGORIES`; gold
    marks where the guarantee is loose). Cell text: the eigen-gap margin
    ``(s_i − s_{i+1})/s_i − 1.5 η s_i``, cross-hatched where it is ≤ 0 (the
    asymptotic condition fails), "n/a" where NaN. Title and dashed line: the
    δ from which the ε = 0 flow learns the pair apart (``flow_delta``), the
    finite-δ requirement that the eigen-gap condition leaves out. The same
    numbers as :func:`separation_table`.

    Parameters
    ----------
    phase : mapping
        Dataset name -> aggregated ``phase_times`` store.
    bounds : mapping
        Dataset name -> aggregated ``bounds`` store (None or absent: no margins).
    n_pairs : int
        Panels per dataset at most.
    """
    diagrams = {
        name: sep
        for name, ds in phase.items()
        if (sep := _separation(ds, bounds.get(name), n_pairs)) is not None
    }
    if not diagrams:
        return placeholder("separation", "no depth-2 aligned runs in this study")
    columns = max(sep.sizes["component"] for sep in diagrams.values())
    fig = new_figure("separation")
    axes = fig.subplots(len(diagrams), columns, squeeze=False)
    categories = list(SEPARATION_CATEGORIES.values())
    cmap = ListedColormap([colour for _, colour in categories])
    norm = BoundaryNorm(np.arange(len(categories) + 1) - 0.5, cmap.N)
    codes = {key: code for code, key in enumerate(SEPARATION_CATEGORIES)}
    for row, (name, sep) in zip(axes, diagrams.items(), strict=True):
        eps = _eps_a1(phase[name])
        for col, ax in enumerate(row):
            if col >= sep.sizes["component"]:
                _note(ax, "")
                ax.set_axis_off()
                continue
            pair = sep.isel(component=col)
            i = int(pair["component"])
            measured = pair["separated"].values
            # No applicable bracket is no guarantee.
            guaranteed = np.nan_to_num(pair["guaranteed"].values, nan=0.0) > 0.5
            code = np.full(measured.shape, np.nan)
            for (m, g), value in codes.items():
                code[(measured == float(m)) & (guaranteed == g)] = value
            ax.imshow(
                np.ma.masked_invalid(code), origin="lower", aspect="auto", cmap=cmap, norm=norm
            )
            margin = pair["eigengap_margin"].values
            for (r, c), value in np.ndenumerate(margin):
                if np.isfinite(value) and value <= 0:
                    ax.add_patch(
                        Rectangle(
                            (c - 0.5, r - 0.5), 1, 1, fill=False, hatch="xx", lw=0, color="0.2"
                        )
                    )
                text = f"{value:+.2f}" if np.isfinite(value) else "n/a"
                if np.isnan(measured[r, c]):
                    text += "\nno run"
                ax.text(c, r, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(pair.sizes["delta"]), [f"{v:g}" for v in pair["delta"].values])
            ax.set_yticks(range(pair.sizes["eta"]), [f"{v:g}" for v in pair["eta"].values])
            ax.grid(False)
            ax.set_xlabel("initialisation scale δ (per layer)")
            needed = float(pair["flow_delta"])
            deltas = pair["delta"].values
            if deltas.size > 1 and deltas[0] <= needed <= deltas[-1]:
                # Where the ε = 0 flow starts to separate the pair, on the cells' δ axis.
                at = np.interp(needed, deltas, np.arange(deltas.size))
                ax.axvline(at, color="k", ls="--", lw=1.2)
            if np.isnan(needed):
                flow_text = "n/a"
            elif np.isinf(needed):
                flow_text = "never"
            else:
                flow_text = f"from δ = {needed:.3g}"
            ax.set_title(
                f"{name}, pair {i}–{i + 1}: gap {float(pair['gap']):.2g}\n"
                f"ε = 0 flow learns them apart {flow_text}",
                fontsize=9,
            )
        ideal = f"\nε_A1 = {eps:.2g}: Cor. 3 assumes ε = 0" if _idealised(eps) else ""
        row[0].set_ylabel(f"{name}{ideal}\nstep size η")
    handles = [
        Patch(facecolor=colour, edgecolor="0.4", label=label) for label, colour in categories
    ]
    handles.append(
        Patch(facecolor="white", edgecolor="0.2", hatch="xx", label="eigen-gap condition fails")
    )
    handles.append(
        Line2D([], [], color="k", ls="--", label="δ from which the ε = 0 flow separates")
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(
        "Separation of consecutive components (depth 2, aligned init): measured "
        "t_i(0.9) < t_i+1(0.1) against Corollary 3's t⁺_i(0.9) < t⁻_i+1(0.1)\n"
        "numbers: eigen-gap margin (s_i − s_i+1)/s_i − 1.5 η s_i (asymptotic condition: > 0)"
    )
    return fig


# ------------------------------------------------------------------ generalisation

# Line styles of the classical estimators' best test losses (lindyn.generalisation).
BASELINE_STYLES = {"ols": ":", "ridge": "--", "rrr": "-.", "pca": (0, (1, 3))}


def figure_generalisation(studies: Mapping[str, xr.Dataset]) -> Figure:
    """Test loss along the paths against the classical estimators, one row per dataset.

    Parameters
    ----------
    studies : mapping
        Dataset name -> generalisation study (:func:`lindyn.generalisation.study`).

    Returns
    -------
    Figure
        Left: test (solid) and training (dashed) loss along the path of each
        depth, its best test loss marked, the best of each estimator as a grey
        horizontal line. Right: the test loss of reduced-rank and PCA regression
        by rank k, each path's best as a horizontal line.
    """
    if not studies:
        return placeholder("generalisation", "no dataset with a test set")
    fig = new_figure("generalisation", rows=len(studies))
    axes = fig.subplots(len(studies), 2, squeeze=False)
    for (name, study), (ax_path, ax_rank) in zip(studies.items(), axes, strict=True):
        methods = study["method"].values
        steps = study["step"].values
        shown = steps > 0  # log axis
        for depth in study["depth"].values:
            path = study.sel(depth=depth)
            color = depth_color(depth)
            ax_path.plot(
                steps[shown],
                path["path_test_loss"].values[shown],
                color=color,
                label=f"L = {depth}",
            )
            ax_path.plot(
                steps[shown], path["path_train_loss"].values[shown], color=color, ls="--", lw=0.8
            )
            best = float(path["best_test_loss"])
            ax_path.plot(float(path["best_step"]), best, "o", color=color, ms=5)
            ax_rank.axhline(best, color=color, lw=1, label=f"best along L = {depth}")
        for method, style in BASELINE_STYLES.items():
            chosen = methods == method
            if chosen.any():
                value = float(study["test_loss"].values[chosen].min())
                ax_path.axhline(value, color="0.3", ls=style, lw=1, label=f"best {method}")
        for method, marker in (("rrr", "o"), ("pca", ".")):
            chosen = methods == method
            ax_rank.plot(
                study["parameter"].values[chosen],
                study["test_loss"].values[chosen],
                color="0.3",
                marker=marker,
                ms=3,
                ls=BASELINE_STYLES[method],
                lw=0.8,
                label=f"{method} of rank k",
            )
        ax_path.set(
            xscale="log",
            xlabel="step t",
            ylabel="loss (solid: test, dashed: training)",
            title=f"{name}: paths at η = {study.attrs['eta']:g}, δ = {study.attrs['delta']:g} "
            "(o: best test loss)",
        )
        ax_rank.set(
            xscale="log",
            xlabel="rank k",
            ylabel="test loss",
            title=f"{name}: estimators of rank k ({int(study.attrs['n_test'])} test rows)",
        )
        for ax in (ax_path, ax_rank):
            ax.legend(fontsize=7, ncols=2)
    return fig


# ------------------------------------------------------------------ departure


DEPARTURE_PANELS = (
    ("u_departure", "max_i max_t |u_i − u_i^(ε=0)| / ρ_i"),
    ("crossing_shift", "max_i |t_i(0.5) − t_i^(ε=0)(0.5)| / t_i^(ε=0)(0.5)"),
    ("bound_violation", "Theorem 3: max violation / ρ_i (depth 2)"),
    ("product_departure", "max_t ‖W − W^(ε=0)‖_F / ‖W^(ε=0)(∞)‖_F"),
)


def figure_departure(ds: xr.Dataset | None) -> Figure:
    """The ε > 0 departure law: each measure against ε_A1 on log-log axes.

    One colour per depth, one marker per (η, δ) cell; points are the seeds, the
    solid line their median, the dashed line the cell's fitted law C·ε_A1^α
    (:func:`lindyn.departure.fit_table`), the dotted line the tolerance (10 %).
    The ε = 0 runs (rounding level) have no place on a log axis; each panel's
    title gives their largest value.

    Parameters
    ----------
    ds : xarray.Dataset or None
        A :func:`lindyn.departure.measure` store (None: the study did not run).
    """
    from lindyn.departure import cell_measures, study_fit

    if ds is None:
        return placeholder("departure", "no departure store (config departure disabled or not run)")
    tolerance = float(json.loads(ds.attrs.get("settings", "{}")).get("tolerance", 0.1))
    cells = cell_measures(ds).sortby("perturbation")
    fit = study_fit(ds)
    zero = cells.sel(perturbation=cells["perturbation"] == 0)
    cells = cells.sel(perturbation=cells["perturbation"] > 0)
    fig = new_figure("departure")
    axes = fig.subplots(2, 2).ravel()
    eps = cells["eps_a1"].transpose("perturbation", "seed").values
    grid = np.geomspace(np.nanmin(eps), np.nanmax(eps), 50)
    pairs = list(itertools.product(cells["eta"].values, cells["delta"].values))
    for ax, (name, label) in zip(axes, DEPARTURE_PANELS, strict=True):
        drawn = False
        for depth in cells["depth"].values:
            color = depth_color(int(depth))
            for k, (eta, delta) in enumerate(pairs):
                y = cells[name].sel(depth=depth, eta=eta, delta=delta)
                y = y.transpose("perturbation", "seed").values
                if not np.isfinite(y).any():
                    continue
                drawn = True
                marker = MARKERS[k % len(MARKERS)]
                shown = np.where(y > 0, y, np.nan)
                ax.loglog(eps.ravel(), shown.ravel(), marker, color=color, ms=3, alpha=0.5)
                ax.loglog(eps[:, 0], np.nanmedian(shown, axis=1), "-", color=color, lw=0.8)
                row = fit[
                    (fit["measure"] == name)
                    & (fit["depth"] == depth)
                    & (fit["eta"] == eta)
                    & (fit["delta"] == delta)
                ]
                if len(row) and np.isfinite(row["alpha"].iloc[0]):
                    law = row["C"].iloc[0] * grid ** row["alpha"].iloc[0]
                    ax.loglog(grid, law, "--", color=color, lw=0.8)
        if not drawn:
            _note(ax, f"{name}: no value")
            continue
        ax.axhline(tolerance, color="k", ls=":", lw=1)
        at_zero = float(zero[name].max()) if zero.sizes["perturbation"] else np.nan
        title = label if not np.isfinite(at_zero) else f"{label}\n(ε = 0 runs: ≤ {at_zero:.1e})"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("ε_A1 = ‖B‖_F / ‖Λ + B‖_F")
        ax.set_ylabel("departure (relative)")
    handles = [
        Line2D([], [], color=depth_color(int(L)), label=f"depth {int(L)}")
        for L in cells["depth"].values
    ]
    handles += [
        Line2D(
            [], [], color="0.4", marker=MARKERS[k % len(MARKERS)], ls="", label=f"η={e:g}, δ={d:g}"
        )
        for k, (e, d) in enumerate(pairs)
    ]
    handles += [
        Line2D([], [], color="0.4", ls="--", label="fitted C·ε_A1^α"),
        Line2D([], [], color="k", ls=":", label=f"tolerance {tolerance:g}"),
    ]
    fig.legend(handles=handles, ncols=min(len(handles), 5), loc="outside lower center")
    fig.suptitle("The ε > 0 departure law: aligned init on `commuting`, B's size swept")
    return fig


# ------------------------------------------------------------------ initialisation axes

# The axes of the initialisation study, beside depth and δ.
INIT_AXES = ("init", "width", "ratio")


def has_init_axes(learning: xr.Dataset | None) -> bool:
    """Whether a learning store spans more than one width or ratio."""
    return learning is not None and any(
        axis in learning.dims and learning.sizes[axis] > 1 for axis in ("width", "ratio")
    )


def init_axes_frame(learning: xr.Dataset) -> pd.DataFrame:
    """The learning store's runs reduced over η and seeds, per depth, init, width, ratio and δ.

    Parameters
    ----------
    learning : xarray.Dataset
        A dataset's ``learning`` store (:func:`lindyn.aggregate.learning`).

    Returns
    -------
    pandas.DataFrame
        Columns ``depth, init, width, ratio, delta``; ``runs`` (usable runs);
        ``sequential`` (mean of their sequential fractions, over runs with a known
        pair); ``erank_first``, ``erank_peak``, ``erank_final`` (medians of the
        effective rank at ``t_1(0.9)``, its peak and its final value).
    """
    names = ["sequential_fraction", "effective_rank_at_first", "peak_effective_rank"]
    names.append("final_effective_rank")
    frame = learning[[*names, "status"]].to_dataframe().reset_index()
    frame = frame[frame["status"].astype(str).isin(USABLE_STATUSES)]
    keys = ["depth", *INIT_AXES, "delta"]
    grouped = frame.groupby(keys, sort=True)
    out = pd.DataFrame(
        {
            "runs": grouped.size(),
            "sequential": grouped["sequential_fraction"].mean(),
            "erank_first": grouped["effective_rank_at_first"].median(),
            "erank_peak": grouped["peak_effective_rank"].median(),
            "erank_final": grouped["final_effective_rank"].median(),
        }
    )
    return out.reset_index()


def _erank_panel(
    ax: Any, traj: xr.Dataset, depth: int, init: str, curves: Sequence[dict[str, Any]], label: str
) -> None:
    """Effective rank against steps of one run per curve (its cell, colour and label)."""
    for curve in curves:
        run = traj["effective_rank"].sel(curve["cell"])
        ax.plot(traj["step"].values, run.values, color=curve["color"], label=curve["label"])
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("effective rank of W(t)")
    ax.set_title(f"{label}, L = {depth}, {init}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def sequential_onset(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per depth, init, width and ratio: the smallest δ from which learning stays sequential.

    The smallest δ of :func:`init_axes_frame` ``frame`` such that at it and at every
    larger δ with a measured fraction, the sequential fraction is at least
    ``threshold``; NaN if there is none.
    """
    rows = []
    for key, cells in frame.groupby(["depth", *INIT_AXES], sort=True):
        known = cells.dropna(subset=["sequential"]).sort_values("delta")
        ok = (known["sequential"] >= threshold).to_numpy()
        # Suffix of δ values all at or above the threshold.
        tail = np.flip(np.logical_and.accumulate(np.flip(ok))) if ok.size else ok
        onset = float(known["delta"].to_numpy()[tail].min()) if tail.any() else math.nan
        rows.append((*key, onset))
    return pd.DataFrame(rows, columns=["depth", *INIT_AXES, "onset"])


def figure_init(
    stores: Mapping[str, tuple[xr.Dataset | None, xr.Dataset | None]],
    depth: int = 2,
    threshold: float = 0.75,
) -> Figure:
    """The initialisation axes: effective rank over time, sequential fraction against ratio.

    One row per dataset whose learning store spans several widths or ratios:
    (a) the effective rank of ``W(t)`` of the aligned runs at the reference cell
    (largest δ, smallest η; the smallest width) for each ratio; (b) the same for
    the random init (seed: the smallest usable) at ratio 1, one curve per width;
    (c) the onset δ of sequential learning (:func:`sequential_onset`: the smallest δ
    from which the mean sequential fraction over η and seeds stays ≥ ``threshold``)
    against the ratio, one line per depth ≥ 2 (colour), init (line style) and width
    (marker).

    Parameters
    ----------
    stores : mapping
        Dataset name -> (learning store, trajectories over every width and ratio).
    depth : int
        Depth of panels (a) and (b).
    threshold : float
        Sequential fraction of panel (c)'s onset.

    Returns
    -------
    matplotlib.figure.Figure
        :data:`FIGURE_SIZES` ``["init"]`` per row.
    """
    rows = {
        name: pair
        for name, pair in stores.items()
        if has_init_axes(pair[0]) and pair[1] is not None and "effective_rank" in pair[1]
    }
    if not rows:
        return placeholder("init", "no dataset spans several widths or per-layer scale ratios")
    fig = new_figure("init", rows=len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, (name, (learning, traj)) in zip(axes, rows.items(), strict=True):
        ratios = [float(r) for r in traj["ratio"].values]
        widths = [int(w) for w in traj["width"].values]
        for init, ax, axis, values in (
            ("aligned", row[0], "ratio", ratios),
            ("random", row[1], "width", widths),
        ):
            fixed = {"width": min(widths)} if axis == "ratio" else {"ratio": BALANCED}
            curves = []
            for j, value in enumerate(values):
                sub = traj.sel({**fixed, axis: value})
                ref = reference_cell(sub, depth, init) if init in sub["init"] else None
                if ref is None:
                    continue
                cell = {**fixed, axis: value, **{k: v for k, v in ref.items() if k in sub.dims}}
                shade = cmap(j / max(len(values) - 1, 1))
                curves.append({"cell": cell, "color": shade, "label": f"{axis} {value:g}"})
            if curves:
                _erank_panel(ax, traj, depth, init, curves, name)
            else:
                _note(ax, f"no usable {init} run at depth {depth}")
        frame = init_axes_frame(learning)
        onset = sequential_onset(frame[frame["depth"] >= 2], threshold)
        ax = row[2]
        for (d, init, width), line in onset.groupby(["depth", "init", "width"]):
            ax.plot(
                line["ratio"],
                line["onset"],
                color=depth_color(d),
                ls="-" if init == "aligned" else "--",
                marker=MARKERS[widths.index(int(width)) % len(MARKERS)],
                label=f"L = {d}, {init}, width {width}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("per-layer scale ratio (first / last layer)")
        ax.set_ylabel(f"δ from which ≥ {threshold:g} of pairs are sequential")
        ax.set_title(f"{name}: onset of sequential learning\n(mean over η and seeds)", fontsize=9)
        ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.suptitle(
        "Initialisation axes: effective rank exp(H(σ/Σσ)) of W(t), and the δ from which "
        "consecutive pairs are learned sequentially"
    )
    return fig
