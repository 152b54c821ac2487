"""Claim verdicts on synthetic aggregated stores whose answer is known (fast, no pipeline)."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import xarray as xr

from lindyn import regime
from lindyn.report import claims, measures, rules
from lindyn.report.format import fmt
from lindyn.report.loading import DatasetResults

MAX_STEPS = 10**7


def synthetic(
    s: list[float],
    deltas: list[float],
    etas: tuple[float, ...] = (0.02, 0.05),
    eps_a1: float = 0.0,
    measured=None,
    lam: list[float] | None = None,
) -> DatasetResults:
    """One dataset's stores: depth-2 aligned runs whose crossings are the ε = 0 flow's.

    ``measured`` maps the flow's crossing steps (dims eta, delta, component,
    fraction) to the "measured" ones; by default they are the flow's, rounded up.
    """
    s_arr = np.asarray(s, dtype=float)
    lam = np.ones(len(s)) if lam is None else np.asarray(lam, dtype=float)
    eta, delta = np.asarray(etas), np.asarray(deltas)
    fraction = np.array([0.1, 0.5, 0.9])
    flow = regime.crossing_steps(
        s_arr[:, None],
        lam[:, None],
        2,
        eta[:, None, None, None],
        delta[None, :, None, None],
        fraction,
    )
    dims = ("eta", "delta", "component", "fraction")
    coords = {
        "eta": eta,
        "delta": delta,
        "component": np.arange(1, len(s) + 1),
        "fraction": fraction,
    }
    t_flow = xr.DataArray(flow, dims=dims, coords=coords)
    t_measured = np.ceil(t_flow) if measured is None else measured(t_flow)
    asymptotic = delta[None, :, None, None] / (eta[:, None, None, None] * s_arr[:, None])
    grid = {"depth": [2], "width": [len(s)], "init": ["aligned"], "seed": [0]}
    phase = xr.Dataset(
        {
            "t_measured": t_measured,
            "t_flow": t_flow,
            "t_asymptotic": t_flow.copy(data=np.broadcast_to(asymptotic, flow.shape)),
            "rel_error_flow": (t_measured - t_flow) / t_flow,
            "rel_error_asymptotic": t_measured / asymptotic - 1,
        }
    ).expand_dims(grid)
    status = xr.DataArray(
        np.full((1, 1, eta.size, delta.size, 1, 1), "converged"),
        dims=("depth", "width", "eta", "delta", "init", "seed"),
        coords={**grid, "eta": eta, "delta": delta},
    )
    phase["status"] = status
    trajectories = xr.Dataset(
        {"stop_step": status.copy(data=np.full(status.shape, float(MAX_STEPS)))},
        coords={"step": [0, MAX_STEPS]},
    )
    trajectories["status"] = status
    meta = {"loader": "commuting", "center": False}
    stats = xr.Dataset(
        {"s": ("component", s_arr), "lam": ("component", lam), "eps_a1": eps_a1, "eps_iso": 0.5},
        attrs={"dataset_meta": json.dumps(meta)},
    )
    return DatasetResults(
        "toy",
        stats,
        trajectories=trajectories,
        phase_times=phase,
        bounds=xr.Dataset(),
        path=xr.Dataset(),
    )


def context(res: DatasetResults) -> claims.Context:
    return claims.Context.of(res, max_steps=MAX_STEPS)


# ------------------------------------------------------------------ agreement and regime


def test_agreement_holds_while_the_limit_is_beyond_the_grid():
    """Close gaps, small δ: the flow predicts few sequential pairs and GD does the same."""
    res = synthetic([1.0, 0.9, 0.8, 0.7], deltas=[1.0, 2.0])
    claim = claims.sequential_learning(context(res))
    assert claim.agreement.kind == "holds"
    assert claim.regime.kind == "beyond the grid"
    needed = regime.sequential_delta(res.stats["s"].values, np.ones(4), 2, 0.75).fraction
    assert needed > 2.0
    assert claim.regime.value == pytest.approx(needed)
    assert f"needs δ ≥ {fmt(needed)}" in claim.regime.text
    assert not claim.agreement.text.startswith("fails")


def test_regime_shows_when_the_grid_reaches_the_theory():
    res = synthetic([1.0, 0.2], deltas=[3.0, 6.0])
    claim = claims.sequential_learning(context(res))
    assert (claim.agreement.kind, claim.regime.kind) == ("holds", "shows")


def test_transition_timing_is_judged_against_the_flow_not_the_asymptote():
    """ρ_i ≠ 1 offsets t(0.5) from τ_2(δ)/(η s_i) by ½·ln ρ_i/δ: that is no failure."""
    res = synthetic([1.0, 0.5], deltas=[2.0, 4.0], lam=[0.2, 0.1])  # ρ = 5
    asymptotic = measures.median(abs(res.phase_times["rel_error_asymptotic"].sel(delta=4.0)))
    assert asymptotic == pytest.approx(0.5 * math.log(5) / 4, rel=0.05)
    claim = claims.transition_location(context(res))
    assert claim.agreement.kind == "holds"
    assert claim.regime.kind == "beyond the grid"


def _delayed(t_flow: xr.DataArray) -> xr.DataArray:
    """Every second component's crossings a third later: pairs flip order."""
    factor = xr.DataArray([1.0, 4 / 3] * (t_flow.sizes["component"] // 2), dims="component")
    return np.ceil(t_flow * factor.assign_coords(component=t_flow["component"]))


@pytest.mark.parametrize(("eps_a1", "kind"), [(0.0, "fails"), (0.05, "departs")])
def test_a_mismatch_fails_only_where_the_prediction_is_exact(eps_a1, kind):
    res = synthetic([1.0, 0.95, 0.9, 0.85], deltas=[8.0], eps_a1=eps_a1, measured=_delayed)
    claim = claims.sequential_learning(context(res))
    assert claim.agreement.kind == kind
    if kind == "departs":
        assert claim.agreement.text.startswith(f"departs (ε_A1 = {fmt(eps_a1)})")


# ------------------------------------------------------------------ one value, one prose


@pytest.mark.parametrize("error", [0.0, 0.03, 0.1, 0.7, 1e-12, 123.0])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_verdict_prose_is_made_from_its_number(error, eps):
    rule = rules.RULES["Sequential learning"]
    verdict = rules.judge(rule, error, eps=eps, measured=0.5, predicted=0.5 + error)
    assert verdict.value == error
    assert f"{rule.error} {fmt(error)} " in verdict.text
    tolerance = rule.holds if error <= rule.holds else rule.approximately
    sign = "≤" if error <= tolerance else ">"
    assert f"{fmt(error)} {sign} {fmt(tolerance)}" in verdict.text
    assert verdict.text.startswith(verdict.kind)


def test_thresholds_are_data_the_text_and_the_verdict_follow():
    rule = rules.RULES["Corollary 3 bracket"]
    strict = dataclasses.replace(rule, approximately=0.01)
    assert rules.judge(rule, 0.03, eps=0.0).kind == "holds approximately"
    assert rules.judge(strict, 0.03, eps=0.0).kind == "fails"
    assert "approximately ≤ 0.05" in rule.text() and "approximately ≤ 0.01" in strict.text()
    assert "{threshold}" not in rules.RULES["Sequential learning"].text()
    assert "0.75" in rules.RULES["Sequential learning"].text()


def test_not_applicable_needs_a_reason():
    rule = rules.RULES["Theorem 3 envelopes"]
    with pytest.raises(ValueError, match="no reason"):
        rules.judge(rule, math.nan, eps=0.0)
    assert rules.judge(rule, math.nan, eps=0.0, reason="no run").text == "not applicable (no run)"
    grid = rules.Grid((1.0,), (0.1,), 100)
    with pytest.raises(ValueError, match="no reason"):
        rules.regime_verdict(rule, None, grid)


def test_a_raising_claim_builder_is_an_error_not_a_row():
    results = {"toy": synthetic([1.0, 0.5], deltas=[2.0])}

    def broken(ctx: claims.Context) -> claims.Claim:
        raise ZeroDivisionError("a bug in a claim")

    with pytest.raises(ZeroDivisionError, match="a bug in a claim"):
        claims.claims(results, MAX_STEPS, builders=(claims.sequential_learning, broken))


# ------------------------------------------------------------------ eigen-gaps


def test_eigengap_fractions_exclude_nan_margins_instead_of_counting_them_false():
    """The last component has no successor: its NaN margin is no failed condition."""
    margin = xr.DataArray(
        [[0.4, 0.1, np.nan], [0.2, -0.3, np.nan]],
        dims=("eta", "component"),
        coords={"eta": [0.1, 0.2], "component": [1, 2, 3]},
    )
    status = xr.DataArray(["converged", "converged"], dims="eta", coords={"eta": [0.1, 0.2]})
    bounds2 = xr.Dataset({"eigengap_margin": margin, "status": status})
    separated = xr.DataArray(
        [[1.0, 0.0, np.nan], [1.0, 1.0, np.nan]], dims=("eta", "component"), coords=margin.coords
    )
    fractions = measures.eigengap_fractions(bounds2, separated)
    assert fractions.holds == pytest.approx(3 / 4)  # not 3/6: NaN is not False
    assert fractions.cells == 4
    # Three pairs measured separated; one of them (η = 0.2, pair 2) with a negative margin.
    assert (fractions.separated, fractions.loose) == (3, pytest.approx(1 / 3))
    # What the old report computed: NaN turned into False.
    assert float((margin.where(margin.notnull()) > 0).mean()) == pytest.approx(3 / 6)


def test_every_verdict_names_its_kind_and_number():
    res = synthetic([1.0, 0.6, 0.3], deltas=[2.0, 4.0])
    for build in (claims.sequential_learning, claims.step_limit, claims.transition_location):
        claim = build(context(res))
        for verdict, kinds in (
            (claim.agreement, rules.AGREEMENT_KINDS),
            (claim.regime, rules.REGIME_KINDS),
        ):
            assert verdict.kind in kinds and verdict.text.startswith(verdict.kind)
            if math.isfinite(verdict.value):
                assert fmt(verdict.value) in verdict.text
        assert re.search(r"\d+ of \d+ predicted crossings measured", claim.evidence)
