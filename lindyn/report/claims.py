"""The paper's claims, each measured on every dataset and given two verdicts.

One builder per claim takes a dataset's :class:`Context` and returns a
:class:`Claim`: the agreement verdict (:func:`lindyn.report.rules.judge`: the
measurements against the theory's own prediction at the same cells) and the
regime verdict (:func:`lindyn.report.rules.regime_verdict`: whether the grid
reaches the limit the paper states, and what the theory says it needs).

A builder says "not applicable" only for a reason it names (no depth-2 run, no
clean signal, ...). Anything else that goes wrong is a bug of the report and
propagates: :func:`claims` catches nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from lindyn import theory
from lindyn.report import measures as m
from lindyn.report import regimes
from lindyn.report.format import fmt, ks
from lindyn.report.loading import DatasetResults
from lindyn.report.rules import (
    EPS_ZERO,
    RULES,
    Grid,
    Need,
    Rule,
    Verdict,
    judge,
    regime_verdict,
)
from lindyn.runs import USABLE_STATUSES

__all__ = ["BUILDERS", "Claim", "Context", "claims"]


@dataclass(frozen=True)
class Claim:
    """One row of the claims table: a claim on one dataset, with both verdicts."""

    claim: str
    dataset: str
    agreement: Verdict
    regime: Verdict
    evidence: str
    figure: str
    grid: Grid


@dataclass(frozen=True)
class Context:
    """What every builder needs about one dataset: its stores, spectra and grid."""

    res: DatasetResults
    grid: Grid
    n: int  # components a depth-2 run learns: s_i > 0, at most the hidden width
    s: np.ndarray  # their s_i
    lam: np.ndarray  # their λ_i
    depths: tuple[int, ...]

    @classmethod
    def of(cls, res: DatasetResults, max_steps: int | None = None) -> Context:
        """The context of a dataset whose stores are complete.

        ``max_steps`` is the runs' step budget (the config's); without it, the
        last logged step of any run.
        """
        phase = res.phase_times
        budget = max_steps if max_steps is not None else int(res.trajectories["step"].max())
        grid = Grid(
            tuple(float(d) for d in phase["delta"].values),
            tuple(float(e) for e in phase["eta"].values),
            int(budget),
        )
        n = m.n_components(res, 2)
        s = np.asarray(res.stats["s"].values[:n], dtype=float)
        lam = np.asarray(res.stats["lam"].values[:n], dtype=float)
        return cls(res, grid, n, s, lam, tuple(int(d) for d in phase["depth"].values))

    @property
    def eps(self) -> float:
        return self.res.eps_a1

    def has_depth_two(self, ds: Any = None) -> bool:
        ds = self.res.phase_times if ds is None else ds
        return m.has(ds, depth=2) and m.has(ds, init="aligned")


def _claim(
    rule: Rule, ctx: Context, agreement: Verdict, regime: Verdict, evidence: str, name: str = ""
) -> Claim:
    return Claim(
        name or rule.claim, ctx.res.name, agreement, regime, evidence, rule.figure, ctx.grid
    )


def _not_applicable(rule: Rule, ctx: Context, reason: str, name: str = "") -> Claim:
    """Both verdicts 'not applicable' for a reason the report names."""
    return _claim(
        rule,
        ctx,
        judge(rule, math.nan, eps=ctx.eps, reason=reason),
        regime_verdict(rule, None, ctx.grid, reason=reason),
        reason,
        name,
    )


def _at(da: Any, delta: float) -> Any:
    return da.sel(delta=delta)


# ------------------------------------------------------------------ phase-time claims


def sequential_learning(ctx: Context) -> Claim:
    """Sequential fraction of consecutive pairs against the ε = 0 flow's, same pairs."""
    rule = RULES["Sequential learning"]
    phase = ctx.res.phase_times
    if not ctx.has_depth_two():
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    if ctx.n < 2:
        return _not_applicable(rule, ctx, f"{ctx.n} learnable component(s): no pair")
    measured = m.sequential(phase, 2, ctx.n)
    flow = m.sequential(phase, 2, ctx.n, var="t_flow")
    both = measured.notnull() & flow.notnull()
    f_measured, f_flow = m.mean(measured.where(both)), m.mean(flow.where(both))
    agreement = judge(
        rule,
        abs(f_measured - f_flow),
        eps=ctx.eps,
        measured=f_measured,
        predicted=f_flow,
        reason="no pair with both crossings measured",
    )
    need, seq = regimes.sequential_need(ctx.s, ctx.lam, ctx.grid, rule.threshold, ctx.depths)
    top = ctx.grid.delta_max
    disjoint = m.sequential(phase, 2, ctx.n, disjoint=True)
    f_one = m.mean(m.sequential(phase, 1, ctx.n)) if m.has(phase, depth=1) else math.nan
    evidence = (
        f"{m.count(measured.where(both))} (pair, η, δ) cells of the first {ctx.n} components; "
        f"at δ = {top:g}: measured {fmt(m.mean(_at(measured.where(both), top)))}, flow "
        f"{fmt(m.mean(_at(flow.where(both), top)))}, disjoint windows "
        f"{fmt(m.mean(_at(disjoint, top)))}; L = 1 {fmt(f_one)}; "
        f"{m.crossing_count(ctx.res, 2, ctx.n).text()}. The flow makes "
        f"{fmt(rule.threshold)} of the pairs sequential from δ = {fmt(seq.fraction)}, every "
        f"pair from {fmt(seq.every)}, with disjoint windows from {fmt(seq.every_disjoint)}"
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


def step_limit(ctx: Context) -> Claim:
    """Relative transition widths against the ε = 0 flow's, same runs."""
    rule = RULES["Theorem 2 step limit"]
    phase = ctx.res.phase_times
    if not ctx.has_depth_two():
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    width = m.relative_width(phase, 2, ctx.n)
    flow = m.relative_width(phase, 2, ctx.n, var="t_flow")
    both = width.notnull() & (flow > 0)
    error = m.median(np.abs(width / flow - 1).where(both))
    agreement = judge(
        rule,
        error,
        eps=ctx.eps,
        measured=m.median(width.where(both)),
        predicted=m.median(flow.where(both)),
        reason="no run crossed 0.1, 0.5 and 0.9 of a target",
    )
    need = regimes.width_need(ctx.s, ctx.lam, ctx.grid, rule.threshold, ctx.depths)
    trend = ", ".join(f"δ={d:g}: {fmt(m.median(_at(width, d)))}" for d in ctx.grid.deltas)
    one = m.median(m.relative_width(phase, 1, ctx.n)) if m.has(phase, depth=1) else math.nan
    evidence = (
        f"median width {trend} (flow at δ = {ctx.grid.delta_max:g}: "
        f"{fmt(m.median(_at(flow, ctx.grid.delta_max)))}); L = 1 {fmt(one)}; "
        f"{m.crossing_count(ctx.res, 2, ctx.n).text()}"
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


def transition_location(ctx: Context) -> Claim:
    """Half-way crossings against the finite-δ flow's; the asymptotic offset as evidence."""
    rule = RULES["Transition at τ_L(δ)/(η s_i)"]
    sub = m.aligned(ctx.res.phase_times, 2)
    if sub is None:
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    half = sub.sel(fraction=0.5, method="nearest").isel(component=slice(0, ctx.n))
    agreement = judge(
        rule,
        m.median(np.abs(half["rel_error_flow"])),
        eps=ctx.eps,
        reason="no crossing at f = 0.5",
    )
    need = regimes.location_need(ctx.s, ctx.lam, ctx.grid, rule.threshold, ctx.depths)
    asymptotic = np.abs(half["rel_error_asymptotic"])
    top = ctx.grid.delta_max
    correction = float(np.median(np.abs(np.log(ctx.s / ctx.lam))) / (2 * top))
    evidence = (
        "against τ_2(δ)/(η s_i): "
        + ", ".join(f"δ={d:g}: {fmt(m.median(_at(asymptotic, d)))}" for d in ctx.grid.deltas)
        + f"; the finite-δ correction ½·|ln ρ_i|/δ predicts {fmt(correction)} at δ = {top:g}; "
        f"{m.crossing_count(ctx.res, 2, ctx.n, fraction=0.5).text()} (f = 0.5)"
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


# ------------------------------------------------------------------ Theorem 3, Corollary 3


def theorem3(ctx: Context) -> Claim:
    """Largest envelope violation over the depth-2 aligned runs with ηs_i ≤ 1/2."""
    rule = RULES["Theorem 3 envelopes"]
    two = m.aligned(ctx.res.bounds)
    if two is None:
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    violation = two["max_violation"]
    agreement = judge(
        rule,
        m.maximum(violation),
        eps=ctx.eps,
        measured=m.maximum(violation),
        predicted=0.0,
        reason="no depth-2 aligned run with ηs_i ≤ ½",
    )
    need = regimes.bound_need(ctx.s, ctx.lam, ctx.grid)
    evidence = (
        f"{m.count(violation)} depth-2 aligned runs with ηs_i ≤ ½; ε_A1 = {fmt(ctx.eps)}; "
        f"{m.crossing_count(ctx.res, 2, ctx.n).text()}"
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


def bracket(ctx: Context) -> Claim:
    """Fraction of measured crossings inside Corollary 3's bracket."""
    rule = RULES["Corollary 3 bracket"]
    two = m.aligned(ctx.res.bounds)
    if two is None:
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    inside = m.mean(two["in_bracket"])
    agreement = judge(
        rule,
        1 - inside,
        eps=ctx.eps,
        measured=inside,
        predicted=1.0,
        reason="no measured crossing with ηs_i ≤ ½",
    )
    need = regimes.bound_need(ctx.s, ctx.lam, ctx.grid)
    ratio = two["bracket_ratio"]
    first_order = m.median((1 + 1.5 * two["eta_s"]).where(ratio.notnull()))
    evidence = (
        f"{m.count(two['in_bracket'])} crossings tested; median t⁺/t⁻ = {fmt(m.median(ratio))} "
        f"(first order 1 + 1.5ηs: {fmt(first_order)}); "
        f"{m.crossing_count(ctx.res, 2, ctx.n).text()}"
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


def eigengaps(ctx: Context) -> Claim:
    """Measured separation against the flow's; where the eigen-gap condition is loose."""
    rule = RULES["Step size below eigen-gaps"]
    two = m.aligned(ctx.res.bounds)
    if two is None or not ctx.has_depth_two():
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    if ctx.n < 2:
        return _not_applicable(rule, ctx, f"{ctx.n} learnable component(s): no pair")
    phase = ctx.res.phase_times
    measured = m.separated(phase, ctx.n)
    flow = m.separated(phase, ctx.n, var="t_flow")
    both = measured.notnull() & flow.notnull()
    agreement = judge(
        rule,
        m.mean((measured != flow).astype(float).where(both)),
        eps=ctx.eps,
        measured=m.mean(measured.where(both)),
        predicted=m.mean(flow.where(both)),
        reason="no pair with both crossings measured",
    )
    need, _, flow_delta = regimes.separation_need(
        ctx.s, ctx.lam, ctx.grid, rule.threshold, ctx.depths
    )
    # The n − 1 pairs among the learnable components (the n-th pairs with one beyond them).
    two = two.isel(component=slice(0, ctx.n - 1))
    gaps = m.eigengap_fractions(two, measured.isel(component=slice(0, ctx.n - 1)))
    guaranteed = measured.where(two["separated"] == 1)
    eta = max(ctx.grid.etas)
    _, margin = theory.eigengap_condition(ctx.s, eta)
    loose = [
        f"{i + 1}–{i + 2} (δ ≥ {fmt(d)})"
        for i, d in enumerate(flow_delta)
        if margin[i] <= 0 and math.isfinite(d)
    ]
    evidence = (
        f"{m.count(measured.where(both))} (pair, η, δ) cells; the eigen-gap condition holds in "
        f"{fmt(gaps.holds)} of {gaps.cells} (pair, η, δ) cells; of {gaps.separated} measured "
        f"separated pairs {fmt(gaps.loose)} separate without it; Corollary 3 guarantees "
        f"{m.count(guaranteed)} pairs, {int(guaranteed.sum())} of them measured separated. "
        f"Sufficient, not necessary: at η = {eta:g} the flow separates pairs with a negative "
        f"margin, " + (", ".join(loose) or "none")
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


# ------------------------------------------------------------------ the path


def path(ctx: Context, target: str) -> Claim:
    """Closest approach to each intermediate W_k against the ε = 0 gradient descent's."""
    rule = RULES["Path visits W_k^seq" if target == "seq" else "Path visits W_k^RRR"]
    two = m.aligned(ctx.res.path, 2)
    if two is None:
        return _not_applicable(rule, ctx, "no depth-2 aligned run")
    inner = list(range(1, ctx.n))
    if not inner:
        return _not_applicable(rule, ctx, "a single rank: no intermediate plateau")
    measured = two[f"min_rel_dist_{target}"].sel(k=inner)
    predicted = m.epsilon_zero_path(ctx.res, 2, target).sel(k=inner)
    both = measured.notnull() & predicted.notnull()
    agreement = judge(
        rule,
        m.median(np.abs(measured - predicted).where(both)),
        eps=ctx.eps,
        measured=m.median(measured.where(both)),
        predicted=m.median(predicted.where(both)),
        reason="no usable depth-2 aligned run",
    )
    norms = m.target_norms(ctx.res.stats, inner)
    apart = norms["seq_rrr_distance"] / norms["rrr_norm"]
    far = [int(k) for k in apart["k"].values if float(apart.sel(k=k)) > rule.threshold]
    if target == "rrr" and far:
        need = Need(
            math.inf,
            ctx.grid.eta_min,
            math.nan,
            never=f"W_k^RRR is {fmt(float(apart.max()))} (relative) from W_k^seq at "
            f"k = {ks(far)}: the ε = 0 path visits W_k^seq, never W_k^RRR (THEORY §8)",
        )
    else:
        need = regimes.path_need(ctx.s, ctx.lam, ctx.grid, rule.threshold, ctx.depths)
    evidence = _path_evidence(ctx, target, rule.threshold, measured)
    if target == "rrr":
        ratio = float(np.median(norms["rrr_norm"].values / norms["seq_norm"].values))
        evidence += (
            f"; median ‖W_k^RRR‖/‖W_k^seq‖ = {fmt(ratio)}; s_i and s_i²/λ_i orders disagree "
            f"at k = {ks(m.orders_disagree(ctx.res))}"
        )
    return _claim(rule, ctx, agreement, regime_verdict(rule, need, ctx.grid), evidence)


def _path_evidence(ctx: Context, target: str, tolerance: float, measured: Any) -> str:
    """Per δ the median distance at the smallest η; the ranks visited at the reference cell."""
    ref = m.reference(ctx.res.path, 2)
    if ref is None:
        return "no usable depth-2 aligned run"
    trend = ", ".join(
        f"δ={d:g}: {fmt(m.median(measured.sel(delta=d, eta=ref['eta'])))}" for d in ctx.grid.deltas
    )
    inner, visited, _ = m.path_visits(ctx.res, 2, target, ref, tolerance)
    one = ""
    if m.has(ctx.res.path, depth=1) and m.status_of(ctx.res.path, {**ref, "depth": 1}) in (
        USABLE_STATUSES
    ):
        _, one_visited, one_values = m.path_visits(ctx.res, 1, target, ref, tolerance)
        one = (
            f"; L = 1 median {fmt(float(np.nanmedian([one_values[k] for k in inner])))}, "
            f"within at {ks(one_visited)}"
        )
    return (
        f"η = {ref['eta']:g}: measured median {trend}; within {tolerance:g} at "
        f"k = {ks(visited)} of {len(inner)} at δ = {ref['delta']:g}{one}"
    )


# ------------------------------------------------------------------ not limits


def table1(ctx: Context, centring: str) -> Claim:
    """ε_A1/ε_iso for one centring (from ``eps_by_centring``, else the store's own ε)."""
    rule = RULES["Table 1: ε_A1 ≪ ε_iso"]
    name = f"{rule.claim} ({centring})"
    res = ctx.res
    a1, iso = m.eps_by_centring(res)[centring]
    own = "centred" if res.meta.get("center") else "raw"
    if not (math.isfinite(a1) and math.isfinite(iso) and iso > 0):
        return _not_applicable(rule, ctx, f"no {centring} ε in the statistics store", name)
    ratio = a1 / iso
    synthetic = res.loader in ("commuting", "autoencoder") and a1 <= EPS_ZERO
    agreement = judge(
        rule,
        ratio,
        eps=a1,
        measured=ratio,
        predicted=rule.holds,
        note="by construction" if synthetic else "",
    )
    evidence = f"ε_A1 = {fmt(a1)}, ε_iso = {fmt(iso)}; squared-norm ratio {fmt(ratio**2)}" + (
        "; the runs use these inputs" if centring == own else ""
    )
    return _claim(rule, ctx, agreement, regime_verdict(rule, None, ctx.grid), evidence, name)


def _best_recon(traj: Any, cell: Mapping[str, Any]) -> tuple[float, float]:
    run = traj.sel({d: v for d, v in cell.items() if d in traj.dims})
    err = np.asarray(run["recon_error"].values, dtype=float)
    if not np.isfinite(err).any():
        return math.nan, math.nan
    i = int(np.nanargmin(err))
    return float(err[i]), float(run["step"].values[i])


def denoising(ctx: Context) -> Claim:
    """Best clean-signal error of L = 2 over L = 1 at the depth-2 reference cell."""
    rule = RULES["Figure 2: denoising by L = 2"]
    traj = ctx.res.trajectories
    if "recon_error" not in traj:
        return _not_applicable(rule, ctx, "no clean signal")
    ref = m.reference(traj, 2)
    if ref is None or not m.has(traj, depth=1):
        return _not_applicable(rule, ctx, "no usable depth-1 and depth-2 pair of runs")
    e2, t2 = _best_recon(traj, ref)
    cell1 = {**ref, "depth": 1}
    status1 = m.status_of(traj, cell1)
    e1, t1 = _best_recon(traj, cell1) if status1 in USABLE_STATUSES else (math.nan, math.nan)
    ratio = e2 / e1 if math.isfinite(e1) and e1 > 0 else math.nan
    agreement = judge(
        rule, ratio, eps=ctx.eps, measured=ratio, predicted=1.0, reason=f"depth-1 run {status1}"
    )
    from lindyn.plots import pca_oracle_errors

    oracle = pca_oracle_errors(ctx.res.stats)
    evidence = (
        f"η = {ref['eta']:g}, δ = {ref['delta']:g}: L = 2 {fmt(e2)} at step {fmt(t2)}, "
        f"L = 1 {fmt(e1)} at step {fmt(t1)}"
    )
    if oracle is not None:
        best = int(np.argmin(oracle))
        evidence += f"; best rank-k PCA {fmt(oracle[best])} (k = {best})"
    return _claim(rule, ctx, agreement, regime_verdict(rule, None, ctx.grid), evidence)


BUILDERS: tuple[Callable[[Context], Claim], ...] = (
    sequential_learning,
    step_limit,
    transition_location,
    theorem3,
    bracket,
    eigengaps,
    partial(path, target="seq"),
    partial(path, target="rrr"),
    partial(table1, centring="raw"),
    partial(table1, centring="centred"),
    denoising,
)


def claims(
    results: Mapping[str, DatasetResults],
    max_steps: int | None = None,
    builders: tuple[Callable[[Context], Claim], ...] = BUILDERS,
) -> list[Claim]:
    """Every claim for every dataset whose stores are complete, claim by claim.

    Parameters
    ----------
    results : mapping
        Loaded stores by dataset (:func:`lindyn.report.loading.load_results`).
    max_steps : int, optional
        The runs' step budget (config ``max_steps``), for the regime verdicts.
    builders : tuple of callables, optional
        The claim builders (default :data:`BUILDERS`).

    Raises
    ------
    Exception
        Whatever a builder raises: a bug of the report, never a table row.
    """
    contexts = [
        Context.of(res, max_steps)
        for res in results.values()
        if res.complete and res.stats is not None
    ]
    return [build(ctx) for build in builders for ctx in contexts]
