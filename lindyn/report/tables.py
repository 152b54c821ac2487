"""The beyond-the-paper tables: depth ≥ 3, the ordering caveat, the init, ε > 0, early stopping.

Each function takes the loaded stores of every dataset and returns a markdown
table (or a one-line note naming why there is none). Like the claims, a table
that cannot be computed is a bug and raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lindyn import theory
from lindyn.report import measures as m
from lindyn.report.format import fmt, ks, md_table
from lindyn.report.loading import DatasetResults
from lindyn.report.rules import RULES
from lindyn.runs import USABLE_STATUSES

__all__ = [
    "departure_table",
    "depth_table",
    "early_stopping_table",
    "eps_rows",
    "init_axes_table",
    "init_table",
    "ordering_table",
]


def _axis_values(
    results: Mapping[str, DatasetResults], store: str, axis: str, kind: type
) -> list[Any]:
    """The sorted union of one grid axis's values over the datasets' stores of one kind."""
    return sorted(
        {
            kind(value)
            for res in results.values()
            if getattr(res, store) is not None
            for value in getattr(res, store)[axis].values
        }
    )


def depth_table(results: Mapping[str, DatasetResults]) -> str:
    """Rescaled half-time ``η s_i t_i(0.5)/τ_L(δ)`` (→ 1) and relative width, per depth and δ.

    Each cell also counts the half-way crossings: measured out of those the ε = 0
    flow predicts, and how many of the others fall past the run's stop step.
    """
    deltas = _axis_values(results, "phase_times", "delta", float)
    rows = []
    for res in results.values():
        phase = res.phase_times
        if phase is None or res.stats is None or not m.has(phase, init="aligned"):
            continue
        for depth in sorted(int(d) for d in phase["depth"].values if d >= 2):
            n = m.n_components(res, depth)
            t10, t50, t90 = m.crossings(phase, depth, n)
            s = t50["component"].copy(data=np.asarray(res.stats["s"].values[:n], dtype=float))
            scaled = t50 * t50["eta"] * s
            width = (t90 - t10) / t50.where(t50 > 0)
            cells = []
            for delta in deltas:
                if delta not in phase["delta"].values:
                    cells.append("—")
                    continue
                r = m.median(scaled.sel(delta=delta)) / float(theory.tau(depth, delta))
                w = m.median(width.sel(delta=delta))
                counted = m.crossing_count(res, depth, n, fraction=0.5, delta=delta)
                past = f"; {counted.beyond_stop} past stop" if counted.beyond_stop else ""
                missed = f"; {counted.missed} missed" if counted.missed else ""
                cells.append(
                    f"{fmt(r)} / {fmt(w)} ({counted.measured} of {counted.predicted}{past}{missed})"
                )
            rows.append([res.name, f"L = {depth}", *cells])
    if not rows:
        return "_No aligned run of depth ≥ 2._"
    return md_table(["dataset", "depth", *[f"δ = {d:g}" for d in deltas]], rows)


def ordering_table(results: Mapping[str, DatasetResults]) -> str:
    """Where the s_i and s_i²/λ_i orders disagree, how far W_k^seq is from W_k^RRR."""
    tolerance = RULES["Path visits W_k^seq"].threshold
    rows, far = [], []
    for res in results.values():
        if res.stats is None:
            continue
        disagree = m.orders_disagree(res)
        order = [int(x) for x in np.asarray(res.stats["order_rrr"].values)[:10]]
        norms = m.target_norms(res.stats, range(1, min(int(res.stats.sizes["component"]), 10) + 1))
        ratio = norms["rrr_norm"].values / norms["seq_norm"].values
        gap = norms["seq_rrr_distance"].values / norms["rrr_norm"].values
        if np.all(gap > 0.5):
            far.append(res.name)
        seq_d = rrr_d = "—"
        ref = m.reference(res.path, 2)
        if ref is not None and disagree:
            _, _, seq_v = m.path_visits(res, 2, "seq", ref, tolerance)
            _, _, rrr_v = m.path_visits(res, 2, "rrr", ref, tolerance)
            shown = [k for k in disagree if k in seq_v]
            seq_d = ", ".join(f"k={k}: {fmt(seq_v[k])}" for k in shown) or "—"
            rrr_d = ", ".join(f"k={k}: {fmt(rrr_v[k])}" for k in shown) or "—"
        rows.append(
            [
                res.name,
                "centred" if res.meta.get("center") else "raw",
                ks(disagree),
                ", ".join(map(str, order)),
                f"{fmt(float(np.median(ratio)))} ({fmt(float(ratio.max()))})",
                f"{fmt(float(np.median(gap)))} ({fmt(float(gap.max()))})",
                seq_d,
                rrr_d,
            ]
        )
    table = md_table(
        [
            "dataset",
            "centring",
            "k where top-k sets differ",
            "order by s_i²/λ_i (first 10)",
            "‖W_k^RRR‖/‖W_k^seq‖, k ≤ 10: median (max)",
            "‖W_k^seq − W_k^RRR‖/‖W_k^RRR‖: median (max)",
            "L = 2 min dist to W_k^seq at those k",
            "L = 2 min dist to W_k^RRR at those k",
        ],
        rows,
    )
    bites = [f"{row[0]} (k = {row[2].strip('{}')})" for row in rows if row[2] != "none"]
    spared = [row[0] for row in rows if row[2] == "none"]
    summary = (
        "The ordering caveat bites on "
        + (", ".join(bites) if bites else "no dataset")
        + "; the orders agree on "
        + (", ".join(spared) if spared else "no dataset")
        + ". W_k^seq (built from the diagonal ρ_i = s_i/λ_i) is far from W_k^RRR "
        "(relative distance > 0.5) at every k on "
        + (", ".join(far) if far else "no dataset")
        + ": with ε > 0 and an ill-conditioned Σx, Σx⁺ in W_k^RRR amplifies "
        "low-variance input directions that gradient descent from a small "
        "initialisation does not reach within the step budget."
    )
    return table + "\n\n" + summary


def _ok_seeds(ds, depth: int, ref: Mapping) -> list[int]:
    status = ds["status"].sel(depth=depth, init="random", eta=ref["eta"], delta=ref["delta"])
    if "width" in status.dims:
        status = status.sel(width=ref["width"])
    return [
        int(s)
        for s, st in zip(status["seed"].values, status.values, strict=True)
        if str(st) in USABLE_STATUSES
    ]


def init_table(results: Mapping[str, DatasetResults]) -> str:
    """Random against aligned initialisation at the depth-L reference cells."""
    tolerance = RULES["Path visits W_k^seq"].threshold
    rows = []
    for res in results.values():
        phase, path = res.phase_times, res.path
        if phase is None or path is None or not m.has(phase, init="random"):
            continue
        for depth in sorted(int(d) for d in phase["depth"].values):
            ref = m.reference(phase, depth)
            if ref is None:
                continue
            n = m.n_components(res, depth)
            cell = phase.sel(delta=[ref["delta"]], eta=[ref["eta"]])
            _, t50a, _ = m.crossings(cell, depth, n)
            _, t50r, _ = m.crossings(cell, depth, n, init="random")
            if "seed" in t50a.dims:
                t50a = t50a.sel(seed=ref["seed"], drop=True)
            seq_a = seq_r = math.nan
            if n >= 2:
                at = phase.sel(delta=[ref["delta"]])
                seq_a = m.mean(m.sequential(at, depth, n))
                random = at.sel(init=["random"]).assign_coords(init=["aligned"])
                seq_r = m.mean(m.sequential(random, depth, n))
            inner, visited, _ = m.path_visits(res, depth, "seq", ref, tolerance)
            random_visits = [
                len(
                    m.path_visits(
                        res, depth, "seq", {**ref, "init": "random", "seed": s}, tolerance
                    )[1]
                )
                for s in _ok_seeds(path, depth, ref)
            ]
            rows.append(
                [
                    res.name,
                    f"L = {depth}",
                    f"η = {ref['eta']:g}, δ = {ref['delta']:g}",
                    fmt(m.median(t50r / t50a)),
                    f"{fmt(seq_a)} / {fmt(seq_r)}",
                    f"{len(visited)} / "
                    f"{fmt(float(np.median(random_visits)) if random_visits else math.nan)}"
                    f" of {len(inner)}",
                ]
            )
    if not rows:
        return "_No random-init runs._"
    return md_table(
        [
            "dataset",
            "depth",
            "cell",
            "median t_i(0.5) random / aligned",
            "sequential pairs aligned / random",
            "W_k^seq plateaus visited aligned / random (median over seeds)",
        ],
        rows,
    )


def init_axes_table(results: Mapping[str, DatasetResults]) -> str:
    """Sequential fraction and effective rank per depth ≥ 2, init, width and ratio.

    Datasets whose learning store spans several widths or ratios only
    (:func:`lindyn.plots.init_axes_frame`): the sequential fraction at each δ (mean
    over η and seeds of the runs' fractions of sequential pairs), then at δ* (per depth,
    the largest δ with a measured sequential fraction: deeper runs at large δ need more
    steps than the budget) the effective rank of ``W(t)`` when the first component is
    learned and at its peak (medians), and a summary of where sequential learning
    survives (fraction at least the sequential-learning rule's threshold at δ*).
    """
    from lindyn.plots import has_init_axes, init_axes_frame

    threshold = RULES["Sequential learning"].threshold
    deltas = _axis_values(
        {n: r for n, r in results.items() if has_init_axes(r.learning)}, "learning", "delta", float
    )
    rows, survives, lost = [], [], []
    for res in results.values():
        if not has_init_axes(res.learning):
            continue
        frame = init_axes_frame(res.learning)
        frame = frame[frame["depth"] >= 2]
        known = frame[frame["sequential"].notna()]
        tops = known.groupby("depth")["delta"].max().to_dict()
        for (depth, init, width, ratio), cells in frame.groupby(
            ["depth", "init", "width", "ratio"], sort=True
        ):
            by_delta = cells.set_index("delta")
            top = tops.get(depth, math.nan)
            at_top = by_delta.loc[top] if top in by_delta.index else None
            rows.append(
                [
                    res.name,
                    f"L = {depth}",
                    init,
                    int(width),
                    f"{ratio:g}",
                    *[
                        fmt(float(by_delta.loc[d, "sequential"])) if d in by_delta.index else "—"
                        for d in deltas
                    ],
                    f"{top:g}" if at_top is not None else "—",
                    fmt(float(at_top["erank_first"])) if at_top is not None else "—",
                    fmt(float(at_top["erank_peak"])) if at_top is not None else "—",
                ]
            )
            if at_top is not None and math.isfinite(float(at_top["sequential"])):
                where = f"{res.name} L = {depth} {init} width {width} ratio {ratio:g}"
                (survives if float(at_top["sequential"]) >= threshold else lost).append(where)
    if not rows:
        return "_No dataset spans several widths or per-layer scale ratios._"
    table = md_table(
        [
            "dataset",
            "depth",
            "init",
            "width",
            "ratio",
            *[f"sequential, δ = {d:g}" for d in deltas],
            "δ*",
            "eff. rank at t_1(0.9), δ*",
            "peak eff. rank, δ*",
        ],
        rows,
    )
    return (
        f"{table}\n\nAt δ*, at least {fmt(threshold)} of the pairs are learned "
        f"sequentially on {len(survives)} of {len(survives) + len(lost)} (depth, init, width, "
        "ratio) cells; it fails on: " + ("; ".join(lost) if lost else "none") + "."
    )


def departure_table(results: Mapping[str, DatasetResults]) -> str:
    """How far each dataset departs from the ε = 0 predictions (aligned init)."""
    depths = _axis_values(results, "trajectories", "depth", int)
    rows = []
    for res in results.values():
        if res.phase_times is None or res.trajectories is None or res.stats is None:
            continue
        cells = []
        for depth in depths:
            dev = m.epsilon_zero_deviation(res, depth)
            cells.append(
                f"{fmt(m.median(dev))} / {fmt(m.maximum(dev))}" if dev is not None else "—"
            )
        flow_err = math.nan
        sub = m.aligned(res.phase_times, 2)
        if sub is not None:
            half = sub["rel_error_flow"].sel(fraction=0.5, method="nearest")
            flow_err = m.median(np.abs(half.isel(component=slice(0, m.n_components(res, 2)))))
        two = m.aligned(res.bounds)
        violation = m.maximum(two["max_violation"]) if two is not None else math.nan
        inside = m.mean(two["in_bracket"]) if two is not None else math.nan
        rows.append([res.name, fmt(res.eps_a1), *cells, fmt(flow_err), fmt(violation), fmt(inside)])
    return md_table(
        [
            "dataset",
            "ε_A1",
            *[f"L = {d}: max_t |u_i − u_i^(ε=0)|/ρ_i, median / max" for d in depths],
            "L = 2: median |t(0.5)/t_flow − 1|",
            "L = 2: max Thm 3 violation / ρ_i",
            "L = 2: crossings in Cor. 3 bracket",
        ],
        rows,
    )


def early_stopping_table(results: Mapping[str, DatasetResults]) -> str:
    """Best clean-signal error reachable by stopping early, per depth and init."""
    from lindyn.plots import pca_oracle_errors

    rows = []
    for res in results.values():
        traj = res.trajectories
        if traj is None or "recon_error" not in traj:
            continue
        oracle = pca_oracle_errors(res.stats) if res.stats is not None else None
        for depth in sorted(int(d) for d in traj["depth"].values):
            for init in [str(i) for i in traj["init"].values]:
                sub = traj.sel(depth=depth, init=init)
                err = sub["recon_error"].where(m.usable(sub))
                if not np.isfinite(err.values).any():
                    continue
                flat = err.stack(cell=[d for d in err.dims if d != "step"])
                j = int(np.nanargmin(flat.min("step").values))
                column = flat.isel(cell=j)
                i = int(np.nanargmin(column.values))
                cell = dict(zip(flat.indexes["cell"].names, flat.indexes["cell"][j], strict=True))
                last = column.values[np.isfinite(column.values)][-1]
                rows.append(
                    [
                        res.name,
                        f"L = {depth}",
                        init,
                        fmt(float(column.values[i])),
                        f"η = {cell['eta']:g}, δ = {cell['delta']:g}, step "
                        f"{int(column['step'].values[i])}",
                        fmt(float(last)),
                        fmt(float(oracle.min())) + f" (k = {int(np.argmin(oracle))})"
                        if oracle is not None
                        else "n/a",
                    ]
                )
    if not rows:
        return "_No dataset with a clean signal._"
    return md_table(
        [
            "dataset",
            "depth",
            "init",
            "best clean-signal error",
            "where",
            "error at the end of that run",
            "best rank-k PCA",
        ],
        rows,
    )


def eps_rows(eps) -> list[list[str]]:
    """Table 1's rows from :func:`lindyn.report.measures.eps_table` (squared ratio in brackets)."""
    rows = []
    for name in eps["dataset"].values:
        row = [str(name)]
        for centring in ("raw", "centred"):
            a1 = float(eps["eps_a1"].sel(dataset=name, centring=centring))
            iso = float(eps["eps_iso"].sel(dataset=name, centring=centring))
            ratio = a1 / iso if iso else math.nan
            row += [fmt(a1), fmt(iso), f"{fmt(ratio)} ({fmt(ratio**2)})"]
        rows.append(row)
    return rows


def separation_summary(results: Mapping[str, DatasetResults], n_pairs: int = 4) -> str:
    """Per dataset and consecutive pair: where separation is measured, guaranteed, loose.

    Depth-2 aligned runs, over the grid's (η, δ) cells (:func:`lindyn.plots.separation_table`):
    cells measured separated, guaranteed by Corollary 3, separated without that
    guarantee, and separated where the eigen-gap condition fails (both "loose"), with
    the δ from which the ε = 0 flow separates the pair.
    """
    from lindyn.plots import separation_table

    phase = {n: r.phase_times for n, r in results.items() if r.phase_times is not None}
    table = separation_table(phase, {n: results[n].bounds for n in phase}, n_pairs)
    rows = []
    for (dataset, pair), cells in table.groupby(["dataset", "pair"], sort=False):
        separated = cells["separated"].fillna(False).astype(bool)
        guaranteed = cells["guaranteed"].fillna(False).astype(bool)
        gap_fails = ~cells["eigengap_holds"].fillna(True).astype(bool)  # unknown: not a failure
        rows.append(
            [
                dataset,
                pair,
                f"{int(separated.sum())} of {len(cells)}",
                int(guaranteed.sum()),
                int((separated & ~guaranteed).sum()),
                int((separated & gap_fails).sum()),
                fmt(float(cells["flow_delta"].iloc[0])),
            ]
        )
    return md_table(
        [
            "dataset",
            "pair",
            "(η, δ) cells separated",
            "guaranteed (Cor. 3)",
            "separated, not guaranteed",
            "separated, eigen-gap fails",
            "flow separates from δ",
        ],
        rows,
    )


def generalisation_table(results: Mapping[str, DatasetResults]) -> str:
    """Per dataset with a test set: the best test loss of each estimator and path."""
    from lindyn.generalisation import BASELINES, summary

    depths = sorted(
        {
            int(d)
            for r in results.values()
            if r.generalisation is not None
            for d in r.generalisation["depth"].values
        }
    )
    columns = [*BASELINES, *(f"gd L={d}" for d in depths)]
    rows = []
    for res in results.values():
        gen = res.generalisation
        if gen is None or "test_loss" not in gen:
            continue
        best = summary(gen).set_index("method")
        cells = []
        for method in columns:
            if method not in best.index:
                cells.append("—")
                continue
            row = best.loc[method]
            detail = row["parameter"] if method in ("ridge", "rrr", "pca") else ""
            if method.startswith("gd"):
                depth = int(method.removeprefix("gd L="))
                final = float(gen["final_test_loss"].sel(depth=depth))
                detail = f"t = {fmt(row['step'])}, " + (
                    "at the end" if row["at_stop"] else f"end: {fmt(final, 4)}"
                )
            # four digits: the best estimators differ in the third
            cells.append(f"{fmt(row['test_loss'], 4)}" + (f" ({detail})" if detail else ""))
        rows.append([res.name, str(int(gen.attrs["n_test"])), *cells, best.index[0]])
    if not rows:
        return "_No dataset has a test set (option test_fraction, or a test file)._"
    return md_table(["dataset", "test rows", *columns, "best"], rows)


def departure_law_table(ds: Any) -> str:
    """The fitted ε > 0 departure law (:func:`lindyn.departure.study_fit`), pooled per depth.

    One row per measure and depth: α ± its standard error (and the seed-bootstrap
    standard deviation), the largest cell's prefactor C ± its standard error, the
    points fitted, and ε_10% from the fit and measured on the grid (">" when the
    whole grid stays within the tolerance).
    """
    from lindyn.departure import MEASURES, study_fit

    fit = study_fit(ds)
    pooled = fit[fit["cell"] == "all"]
    rows = []
    for row in pooled.itertuples():
        measured = f"> {fmt(row.eps10_measured)}" if row.whole_grid else fmt(row.eps10_measured)
        rows.append(
            [
                MEASURES[row.measure],
                str(row.depth),
                f"{fmt(row.alpha)} ± {fmt(row.alpha_se)} ({fmt(row.alpha_boot_sd)})",
                f"{fmt(row.C)} ± {fmt(row.C_se)}",
                str(row.points),
                fmt(row.eps10_fit),
                measured,
            ]
        )
    return md_table(
        [
            "measure",
            "L",
            "α ± s.e. (seed bootstrap s.d.)",
            "C ± s.e. (largest cell)",
            "points",
            "ε_10% (fit)",
            "ε_10% (grid)",
        ],
        rows,
    )
