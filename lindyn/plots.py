"""The study's figures: matplotlib (Agg backend), xarray objects in, figures out.

Every ``figure_*`` function takes the aggregated stores (or statistics stores)
as :class:`xarray.Dataset` objects, selects what it needs, and returns a
:class:`matplotlib.figure.Figure` of size :data:`FIGURE_SIZES` at :data:`DPI`;
:func:`save_figure` writes it as PNG and/or PDF. Runs whose ``status`` is not
in :data:`OK_STATUSES` (diverged, missing) are never drawn, and a figure whose
data are absent shows a note instead of failing.

Figures (THEORY §10 for the paper's):

1. :func:`figure_flow` — the paper's Figure 1, closed-form gradient flow;
2. :func:`figure_autoencoder` — the paper's Figure 2, GD on the autoencoder;
3. :func:`figure_eps` — Table 1 as a bar chart;
4. :func:`figure_transitions` — measured against predicted transition steps;
5. :func:`figure_theorem3` — Theorem 3's envelopes and Corollary 3's bracket;
6. :func:`figure_depth` — the τ_L(δ) rescaling for L = 2, 3, 4;
7. :func:`figure_path` — distances to ``W_k^seq`` and ``W_k^RRR`` along the path.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from lindyn import flow, theory
from lindyn.aggregate import GRID_DIMS, USABLE_STATUSES
from lindyn.store import write_atomically

__all__ = [
    "DPI",
    "FIGURE_SIZES",
    "OK_STATUSES",
    "cells",
    "figure_autoencoder",
    "figure_depth",
    "figure_eps",
    "figure_flow",
    "figure_path",
    "figure_theorem3",
    "figure_transitions",
    "pca_oracle_errors",
    "reference_cell",
    "save_figure",
]

# The grid axes and the statuses whose measurements count, as the aggregation defines them.
OK_STATUSES = USABLE_STATUSES
DPI = 120
FIGURE_SIZES = {
    "flow": (11.0, 6.5),
    "autoencoder": (11.0, 4.2),
    "eps": (8.0, 4.5),
    "transitions": (11.0, 5.0),
    "theorem3": (12.0, 8.0),
    "depth": (12.0, 4.2),
    "path": (13.0, 9.0),
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

    Among cells of ``depth`` and ``init`` whose status is in :data:`OK_STATUSES`:
    the largest δ (smallest initialisation), then the smallest η (closest to the
    gradient flow), unless given. None if no such run.
    """
    frame = cells(ds)
    frame = frame[
        (frame["depth"] == depth) & (frame["init"] == init) & frame["status"].isin(OK_STATUSES)
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
    frame = frame[frame["status"].isin(OK_STATUSES)]
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


def new_figure(kind: str, **kwargs: Any) -> Figure:
    """A figure of the standard size for ``kind``, constrained layout."""
    return plt.figure(figsize=FIGURE_SIZES[kind], dpi=DPI, layout="constrained", **kwargs)


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


def _label(stats_or_store: xr.Dataset, name: str | None = None) -> str:
    name = name or stats_or_store.attrs.get("dataset", "")
    return str(name)


def _positive_components(s: np.ndarray, lam: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s > 1e-12 * max(s.max(initial=0.0), 1e-300)) & (lam > 0)


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
    δ (THEORY §10): transitions at ``t/τ = 1/s_i`` (dotted lines).
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
        axes[0, col].set_title(f"{name} ({kind})")
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
    is drawn as a reference.
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
        if str(run["status"].values) not in OK_STATUSES:
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
    ax_norm.set_title("trace norm: L = 2 climbs in unit steps (one component each)")
    ax_err.set_title("reconstruction of the clean signal (circles: best step)")
    fig.suptitle(
        f"{name}: gradient descent, {init} init, η = {ref['eta']:g}, δ = {ref['delta']:g} per layer"
    )
    return fig


# ------------------------------------------------------------------ figure 3


def figure_eps(eps: xr.Dataset) -> Figure:
    """Table 1 as bars: ε_A1 against ε_iso, raw and centred, per dataset (log y).

    Parameters
    ----------
    eps : xarray.Dataset
        Variables ``eps_a1`` and ``eps_iso`` with dims ``(dataset, centring)``,
        ``centring`` in ("raw", "centred"); NaN where not computed.
    """
    if eps.sizes.get("dataset", 0) == 0:
        return placeholder("eps", "no dataset")
    fig = new_figure("eps")
    ax = fig.add_subplot()
    floor = 1e-16
    names = [str(n) for n in eps["dataset"].values]
    series = [
        ("eps_a1", "raw", "ε_A1, raw", "tab:blue", None),
        ("eps_iso", "raw", "ε_iso, raw", "tab:orange", None),
        ("eps_a1", "centred", "ε_A1, centred", "tab:blue", "//"),
        ("eps_iso", "centred", "ε_iso, centred", "tab:orange", "//"),
    ]
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for j, (var, centring, label, color, hatch) in enumerate(series):
        if centring not in eps["centring"].values:
            continue
        values = np.asarray(eps[var].sel(centring=centring), dtype=float)
        shown = np.where(np.isfinite(values), np.maximum(values, floor), np.nan)
        bars = ax.bar(
            x + (j - 1.5) * width,
            shown,
            width,
            label=label,
            color=color,
            alpha=0.85 if hatch is None else 0.45,
            hatch=hatch,
            edgecolor="k",
            lw=0.5,
        )
        for bar, value in zip(bars, values, strict=True):
            if np.isfinite(value):
                text = "≈0" if value < 1e-12 else f"{value:.2g}"
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 1),
                    textcoords="offset points",
                )
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 3)
    ax.set_xticks(x, names)
    ax.set_xlabel("dataset")
    ax.set_ylabel("normalised violation ε (Frobenius ratio, not squared; 1)")
    ax.set_title("Assumption 1 (ε_A1) against isotropic inputs (ε_iso): lower is better")
    fig.legend(ncols=4, loc="outside lower center")
    return fig


# ------------------------------------------------------------------ figure 4


def figure_transitions(phase: Mapping[str, xr.Dataset], fraction: float = 0.5) -> Figure:
    """Measured first-crossing steps against the flow and the asymptotic prediction.

    Every usable run and component at ``fraction``; colour by depth, marker by
    dataset, filled for the aligned init and hollow for the random one;
    log–log with the identity line.
    """
    fig = new_figure("transitions")
    axes = fig.subplots(1, 2)
    predictions = (
        ("t_flow", "gradient-flow crossing time / η  (steps)"),
        ("t_asymptotic", "asymptotic τ_L(δ) / (η s_i)  (steps)"),
    )
    lo, hi = np.inf, 0.0
    depths_seen: set[int] = set()
    # Random inits first and faint, aligned ones on top.
    inits = [
        i for i in ("random", "aligned") if any(i in ds["init"].values for ds in phase.values())
    ]
    for init, (mi, ds) in itertools.product(inits, enumerate(phase.values())):
        marker = MARKERS[mi % len(MARKERS)]
        ok = ds["status"].isin(OK_STATUSES)
        sub = ds.sel(fraction=fraction, method="nearest")
        if init not in ds["init"].values:
            continue
        for depth in ds["depth"].values:
            part = sub.sel(depth=depth, init=init)
            okp = ok.sel(depth=depth, init=init)
            measured = part["t_measured"].where(okp)
            for ax, (var, _) in zip(axes, predictions, strict=True):
                pred = part[var].broadcast_like(measured)
                x, y = np.ravel(pred.values), np.ravel(measured.transpose(*pred.dims).values)
                keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
                if not keep.any():
                    continue
                color = depth_color(int(depth))
                aligned = init == "aligned"
                ax.scatter(
                    x[keep],
                    y[keep],
                    s=16 if aligned else 10,
                    marker=marker,
                    facecolors=color if aligned else "none",
                    edgecolors=color,
                    lw=0.8,
                    alpha=0.85 if aligned else 0.35,
                    zorder=3 if aligned else 2,
                )
                lo, hi = (
                    min(lo, x[keep].min(), y[keep].min()),
                    max(hi, x[keep].max(), y[keep].max()),
                )
                depths_seen.add(int(depth))
    if not np.isfinite(lo):
        plt.close(fig)
        return placeholder("transitions", "no measured crossing in any usable run")
    for ax, (_, label) in zip(axes, predictions, strict=True):
        ax.plot([lo / 2, hi * 2], [lo / 2, hi * 2], color="k", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo / 2, hi * 2)
        ax.set_ylim(lo / 2, hi * 2)
        ax.set_xlabel(label)
        ax.set_ylabel(f"measured first step with u_i ≥ {fraction:g}·ρ_i  (steps)")
    handles = [
        Line2D([], [], color=depth_color(d), marker="o", ls="", label=f"L = {d}")
        for d in sorted(depths_seen)
    ]
    handles += [
        Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], ls="", label=name)
        for i, name in enumerate(phase)
    ]
    handles += [
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="", label="random init (hollow)"),
        Line2D([], [], color="k", ls="--", label="identity"),
    ]
    axes[0].legend(handles=handles, loc="upper left", ncols=2)
    axes[0].set_title("against the per-component gradient flow (from each run's u_i(0))")
    axes[1].set_title("against Theorem 2's asymptotic transition (L ≥ 2)")
    return fig


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
    status_ok = two["status"].isin(OK_STATUSES)
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
    stats: xr.Dataset | None,
    traj: xr.Dataset | None = None,
    depths: Sequence[int] = (2, 3, 4),
    deltas: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    n_components: int = 3,
    name: str = "commuting",
) -> Figure:
    """Rescaled transitions for L = 2, 3, 4 tend to steps at ``T_i = 1/s_i`` as δ grows.

    Lines: closed-form flow ``u_i(τ_L(δ)·t)/ρ_i`` for each δ in ``deltas``
    (colour); markers: gradient descent of the aligned runs in ``traj`` at their
    own δ, plotted at ``t = η·step/τ_L(δ)``.
    """
    if stats is None:
        return placeholder("depth", "no statistics store")
    s = np.asarray(stats["s"], dtype=float)
    lam = np.asarray(stats["lam"], dtype=float)
    keep = _positive_components(s, lam)
    s, lam = s[keep][:n_components], lam[keep][:n_components]
    if s.size == 0:
        return placeholder("depth", f"{name}: no component with s > 0")
    rho = s / lam
    gd_deltas: list[float] = []
    if traj is not None:
        gd_deltas = sorted(
            {float(c["delta"]) for c in _ok_runs(traj, init="aligned") if c["depth"] in depths}
        )
    all_deltas = sorted(set(map(float, deltas)) | set(gd_deltas))
    norm = LogNorm(vmin=min(all_deltas), vmax=max(all_deltas)) if min(all_deltas) > 0 else None
    cmap = plt.get_cmap("viridis")

    def colour(d: float):
        return cmap(norm(d)) if norm is not None else cmap(0.5)

    fig = new_figure("depth")
    axes = fig.subplots(1, len(depths), squeeze=False)[0]
    x = np.linspace(0.0, 1.5 / s[-1], 600)
    for ax, depth in zip(axes, depths, strict=True):
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
            for cell in _ok_runs(traj, depth=depth, init="aligned"):
                if cell["eta"] != min(
                    c["eta"]
                    for c in _ok_runs(traj, depth=depth, init="aligned", delta=cell["delta"])
                ):
                    continue
                run = _sel(traj, cell)
                xs = cell["eta"] * run["step"].values / float(theory.tau(depth, cell["delta"]))
                us = run["u"].values[:, : s.size] / rho
                inside = xs <= x[-1]
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
        ax.set_ylim(-0.05, 1.1)
        ax.set_xlabel("rescaled time t / τ_L(δ)  (dimensionless)")
        ax.set_ylabel("u_i / ρ_i  (1)")
        if depth == 2:
            scale = r"$\tau_2 = \delta$"
        elif depth == 3:
            scale = r"$\tau_3 = e^{\delta}$"
        else:
            scale = rf"$\tau_{{{depth}}} = e^{{{depth - 2}\delta}}/{depth - 2}$"
        ax.set_title(f"L = {depth} ({scale})")
    handles, _ = axes[0].get_legend_handles_labels()
    handles.append(
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="", label="GD, aligned (smallest η)")
    )
    handles.append(Line2D([], [], color="k", ls=":", label="T_i = 1/s_i"))
    axes[0].legend(handles=handles, loc="lower right", fontsize=7)
    fig.suptitle(
        f"{name}: first {s.size} components, flow (lines) and GD (circles) against "
        "rescaled time; the steps sharpen as δ grows"
    )
    return fig


# ------------------------------------------------------------------ figure 7


def figure_path(
    traj: Mapping[str, xr.Dataset],
    path: Mapping[str, xr.Dataset],
    norms: Mapping[str, xr.Dataset],
    tolerance: float = 0.1,
    max_k: int = 10,
) -> Figure:
    """Distances to ``W_k^seq`` and ``W_k^RRR`` along the path, plateau windows shaded.

    One column per dataset, at its depth-2 :func:`reference_cell`. Rows: depth 2
    distance to ``W_k^seq``, depth 2 distance to ``W_k^RRR``, depth 1 (same η, δ)
    distance to ``W_k^seq``; each relative to the target's Frobenius norm
    (``norms[name]`` has ``seq_norm`` and ``rrr_norm`` along ``k``). Shaded: the
    logged steps within ``tolerance`` (``path.zarr`` window).
    """
    names = [n for n in traj if n in path and n in norms]
    if not names:
        return placeholder("path", "no aggregated run")
    fig = new_figure("path")
    axes = fig.subplots(3, len(names), squeeze=False, sharey="row")
    rows = (
        (2, "seq", "L = 2: ‖W(t) − W_k^seq‖ / ‖W_k^seq‖"),
        (2, "rrr", "L = 2: ‖W(t) − W_k^RRR‖ / ‖W_k^RRR‖"),
        (1, "seq", "L = 1: ‖W(t) − W_k^seq‖ / ‖W_k^seq‖"),
    )
    cmap = plt.get_cmap("viridis")
    for col, name in enumerate(names):
        ds, pm, nm = traj[name], path[name], norms[name]
        ref = reference_cell(ds, 2)
        for row, (depth, target, label) in enumerate(rows):
            ax = axes[row, col]
            if ref is None or depth not in ds["depth"].values:
                _note(ax, f"{name}: no usable depth-{depth} run")
                continue
            cell = {**ref, "depth": depth}
            run = _sel(ds, cell)
            if str(run["status"].values) not in OK_STATUSES:
                _note(ax, f"{name}: depth-{depth} run is {run['status'].values}")
                continue
            dist = run[f"dist_{target}"]
            norm_k = nm[f"{target}_norm"].reindex(k=dist["k"].values)
            rel = dist / norm_k
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
                start = float(windows[f"window_start_{target}"].sel(k=k).values)
                end = float(windows[f"window_end_{target}"].sel(k=k).values)
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
    fig.suptitle(
        f"Distance to the sequential and reduced-rank solutions (dotted: tolerance "
        f"{tolerance:g}; shaded: steps within it)"
    )
    return fig
