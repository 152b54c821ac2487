"""Each claim's tolerances and regime criterion, as data, and the two verdict functions.

A claim gets two verdicts, decided separately:

* **agreement** (:func:`judge`): do the measurements match the theory's own
  prediction at the same depth, η, δ and init? The claim's builder reduces the
  comparison to one *error* (smaller is closer); the :class:`Rule` says how small
  it must be. A claim **fails** only here, and only on data where the prediction
  is exact (ε_A1 = 0); on data with ε > 0 the same error, out of tolerance, is a
  **departure** of the size printed.
* **regime** (:func:`regime_verdict`): does the claim as the paper states it, a
  limit (δ → ∞, η → 0), show within the grid? The theory (:mod:`lindyn.regime`,
  through :mod:`lindyn.report.regimes`) says which δ, η and step budget it needs.

The text of the report's "How verdicts are computed" section is generated from
:data:`RULES` (:meth:`Rule.text`), and every verdict's prose from the number it
was decided on, so that the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from lindyn.report.format import fmt

__all__ = [
    "AGREEMENT_KINDS",
    "EPS_ZERO",
    "REGIME_KINDS",
    "RULES",
    "Grid",
    "Need",
    "Rule",
    "Verdict",
    "judge",
    "regime_verdict",
]

AGREEMENT_KINDS = ("holds", "holds approximately", "departs", "fails", "not applicable")
REGIME_KINDS = ("shows", "beyond the grid", "not a limit", "not applicable")
EPS_ZERO = 1e-8  # ε_A1 below this: Assumption 1 holds exactly up to rounding


@dataclass(frozen=True)
class Rule:
    """How one claim is judged.

    Attributes
    ----------
    claim : str
        The claim's name in the report.
    figure : str
        The figure that shows it (a key of :data:`lindyn.report.figures.FIGURES`).
    measured : str
        What is measured, on which runs.
    predicted : str
        The theory's prediction it is compared with, at the same cells.
    error : str
        The agreement number: a distance between the two (smaller is closer).
    holds, approximately : float
        Tolerances on the error: at most ``holds``, the claim holds; at most
        ``approximately``, it holds approximately; beyond, it fails (ε = 0) or
        departs (ε > 0, when ``epsilon_zero``).
    limit : str
        The claim as the paper states it, and the regime criterion; may use
        ``{threshold}``.
    threshold : float
        The number in ``limit`` (NaN if none).
    epsilon_zero : bool
        Whether the prediction assumes ε = 0 (Assumption 1 exactly): then data
        with ε > 0 depart from it rather than fail it.
    """

    claim: str
    figure: str
    measured: str
    predicted: str
    error: str
    holds: float
    approximately: float
    limit: str
    threshold: float = math.nan
    epsilon_zero: bool = True

    @property
    def is_limit(self) -> bool:
        """Whether the paper states the claim as a limit (else its regime is 'not a limit')."""
        return bool(self.limit) and not self.limit.startswith("not a limit")

    def limit_text(self) -> str:
        """The regime criterion with its threshold filled in."""
        return self.limit.format(threshold=fmt(self.threshold))

    def text(self) -> str:
        """The rule as printed in the report."""
        eps = (
            f" On data with ε_A1 > {EPS_ZERO:g} an error beyond {fmt(self.approximately)} is a "
            "departure of that size, not a failure."
            if self.epsilon_zero
            else ""
        )
        return (
            f"*Measured*: {self.measured}. *Predicted*: {self.predicted}. "
            f"*Agreement*: {self.error}; holds ≤ {fmt(self.holds)}, approximately "
            f"≤ {fmt(self.approximately)}, fails otherwise.{eps} "
            f"*Regime*: {self.limit_text()}."
        )


_SEQUENTIAL = "t_{i+1}(0.1) ≥ t_i(0.5)"
_ALIGNED_2 = "depth-2 aligned runs, every η and δ of the grid, first min(r, rank Σxy) components"
_BUDGET = (
    "; the step budget covers every 0.9 crossing with margin 1.5 (`regime.step_budget`) at "
    "the grid's smallest η"
)
RULES: dict[str, Rule] = {
    rule.claim: rule
    for rule in (
        Rule(
            "Sequential learning",
            "fig4_transitions",
            f"fraction of consecutive pairs (i, i+1) learned sequentially, {_SEQUENTIAL}, "
            f"{_ALIGNED_2}",
            "the same fraction for the ε = 0 gradient flow's crossings t_flow from each run's "
            "u_i(0), on the same pairs",
            "|measured − predicted|",
            0.05,
            0.15,
            "as δ → ∞ the components are learned one at a time: shows when the ε = 0 flow "
            "makes at least {threshold} of the pairs sequential (`regime.sequential_delta`)"
            + _BUDGET,
            0.75,
        ),
        Rule(
            "Theorem 2 step limit",
            "fig6_depth",
            f"relative transition width w = (t(0.9) − t(0.1))/t(0.5), {_ALIGNED_2}",
            "w of the ε = 0 flow's crossings on the same runs",
            "median |w/w_flow − 1|",
            0.05,
            0.15,
            "as δ → ∞ each component becomes a step (w → 0): shows when the ε = 0 flow's "
            "median w is at most {threshold}" + _BUDGET,
            0.25,
        ),
        Rule(
            "Transition at τ_L(δ)/(η s_i)",
            "fig4_transitions",
            f"half-way crossing t(0.5), {_ALIGNED_2}",
            "the ε = 0 flow's crossing t_flow(0.5) from the run's own u_i(0): at finite δ it "
            "sits ≈ ½·ln ρ_i/δ from τ_2(δ)/(η s_i)",
            "median |t/t_flow − 1|",
            0.05,
            0.15,
            "as δ → ∞ the transition sits at τ_L(δ)/(η s_i): shows when the flow's median "
            "|t_flow(0.5)·η s_i/τ_2(δ) − 1| is at most {threshold}" + _BUDGET,
            0.1,
        ),
        Rule(
            "Theorem 3 envelopes",
            "fig5_theorem3",
            "largest violation of Theorem 3's envelopes / ρ_i over steps, components and "
            "depth-2 aligned runs with ηs_i ≤ ½",
            "0: the envelopes bound u_i(t) at every step",
            "largest violation / ρ_i",
            1e-9,
            1e-3,
            "not asymptotic: holds at every δ and step with ηs_i ≤ ½; shows when the grid has "
            "such runs and its budget covers the transitions" + _BUDGET,
        ),
        Rule(
            "Corollary 3 bracket",
            "fig5_theorem3",
            "measured crossings t_i(f), f = 0.1, 0.5, 0.9, of depth-2 aligned runs with ηs_i ≤ ½",
            "every one inside [⌊t⁻⌋, t⁺]",
            "fraction outside",
            0.0,
            0.05,
            "not asymptotic: holds at every δ with ηs_i ≤ ½; shows when the grid has such "
            "runs and its budget covers the crossings" + _BUDGET,
        ),
        Rule(
            "Step size below eigen-gaps",
            "fig8_separation",
            "per consecutive pair and depth-2 aligned run, separation t_i(0.9) < t_{i+1}(0.1); "
            "alongside, how often the eigen-gap condition (s_i − s_{i+1})/s_i > 1.5ηs_i holds "
            "and how often pairs separate without it",
            "separation by the ε = 0 flow's crossings on the same pairs",
            "fraction of pairs where they disagree",
            0.05,
            0.15,
            "as δ → ∞, pairs whose eigen-gap exceeds 1.5ηs_i separate: shows when Corollary 3 "
            "guarantees at least {threshold} of the pairs meeting the eigen-gap condition "
            "separated at the grid's smallest η (`regime.separating_eta`)" + _BUDGET,
            0.75,
        ),
        Rule(
            "Path visits W_k^seq",
            "fig7_path",
            "min_t ‖W(t) − W_k^seq‖/‖W_k^seq‖ over the logged steps, each intermediate rank "
            "1 ≤ k < min(r, rank Σxy), depth-2 aligned runs, every η and δ",
            "the same distance for the ε = 0 gradient descent U diag(u^(ε=0)(t)) Vᵀ "
            "(THEORY §4) at the same η, δ and logged steps",
            "median |measured − predicted|",
            0.01,
            0.05,
            "as δ → ∞ the path visits every W_k^seq: shows when the ε = 0 flow comes within "
            "{threshold} of each intermediate W_k^seq" + _BUDGET,
            0.1,
        ),
        Rule(
            "Path visits W_k^RRR",
            "fig7_path",
            "as for W_k^seq, with W_k^RRR",
            "the ε = 0 gradient descent's distance to the dataset's W_k^RRR",
            "median |measured − predicted|",
            0.01,
            0.05,
            "the path visits W_k^RRR only where W_k^RRR = W_k^seq (THEORY §8): shows as for "
            "W_k^seq when every intermediate W_k^RRR is within {threshold} of W_k^seq, never "
            "otherwise",
            0.1,
        ),
        Rule(
            "Table 1: ε_A1 ≪ ε_iso",
            "fig3_eps",
            "ratio ε_A1/ε_iso (Frobenius norms, not squared), raw and centred inputs (one row "
            "each; the runs use the dataset's configured centring)",
            "two orders of magnitude (the paper)",
            "ratio",
            0.01,
            0.1,
            "not a limit: a property of the data",
            epsilon_zero=False,
        ),
        Rule(
            "Figure 2: denoising by L = 2",
            "fig2_autoencoder",
            "best clean-signal error along the path (min over logged steps), L = 2 over L = 1 "
            "at the same (η, δ), the depth-2 reference cell (largest δ, smallest η)",
            "below 1: the two-layer path passes rank-k denoisers the linear one never visits",
            "ratio",
            0.9,
            1.0,
            "not a limit: a comparison at the grid's reference cell",
            epsilon_zero=False,
        ),
    )
}


@dataclass(frozen=True)
class Verdict:
    """A verdict, the number it was decided on, and its prose (made from that number)."""

    kind: str
    value: float
    text: str


def judge(
    rule: Rule,
    error: float,
    *,
    eps: float,
    measured: float = math.nan,
    predicted: float | str = math.nan,
    reason: str = "",
    note: str = "",
) -> Verdict:
    """The agreement verdict of every claim: ``error`` against the rule's tolerances.

    Parameters
    ----------
    rule : Rule
        The claim's rule.
    error : float
        The agreement number (smaller is closer); NaN when there is nothing to compare.
    eps : float
        The dataset's ε_A1: with ``rule.epsilon_zero`` and ε_A1 > :data:`EPS_ZERO`,
        an error beyond tolerance is a departure, not a failure.
    measured, predicted : float or str, optional
        The two numbers compared, printed with the error.
    reason : str, optional
        Why there is nothing to compare: required when ``error`` is NaN.
    note : str, optional
        Appended to the prose.

    Raises
    ------
    ValueError
        If ``error`` is NaN and no reason is given: "not applicable" is only for
        reasons the report can name.
    """
    if not math.isfinite(error):
        if not reason:
            raise ValueError(f"{rule.claim}: no agreement number and no reason why")
        return Verdict("not applicable", math.nan, f"not applicable ({reason})")
    departs = rule.epsilon_zero and math.isfinite(eps) and eps > EPS_ZERO
    if error <= rule.holds:
        kind, tolerance = "holds", rule.holds
    elif error <= rule.approximately:
        kind, tolerance = "holds approximately", rule.approximately
    else:
        kind, tolerance = ("departs" if departs else "fails"), rule.approximately
    label = f"departs (ε_A1 = {fmt(eps)})" if kind == "departs" else kind
    compared = ""
    if isinstance(predicted, str) or math.isfinite(predicted):
        compared = f"{fmt(measured)} vs {fmt(predicted)} predicted; "
    sign = "≤" if error <= tolerance else ">"
    text = f"{label}: {compared}{rule.error} {fmt(error)} {sign} {fmt(tolerance)}"
    if departs and kind != "departs":
        text += f" (ε_A1 = {fmt(eps)})"
    if note:
        text += f"; {note}"
    return Verdict(kind, error, text)


@dataclass(frozen=True)
class Grid:
    """What the grid reaches: its largest δ, smallest η, and the runs' step budget."""

    deltas: tuple[float, ...]
    etas: tuple[float, ...]
    max_steps: int

    @property
    def delta_max(self) -> float:
        return max(self.deltas)

    @property
    def eta_min(self) -> float:
        return min(self.etas)

    def text(self) -> str:
        return f"δ ≤ {fmt(self.delta_max)}, η ≥ {fmt(self.eta_min)}, {fmt(self.max_steps)} steps"


@dataclass(frozen=True)
class Need:
    """What the theory says a claim needs to show (depth 2, aligned init, ε = 0).

    Attributes
    ----------
    delta : float
        Smallest per-layer δ (``inf`` if none suffices; then ``never`` says why).
    eta : float
        The step size ``steps`` is counted at (the grid's smallest).
    steps : float
        Steps a run at ``eta`` and ``steps_delta`` needs for every 0.9 crossing.
    steps_delta : float
        The δ ``steps`` is counted at: the grid's smallest δ ≥ ``delta``, or
        ``delta`` beyond the grid.
    eta_max : float
        Largest step size at which the claim shows (``inf``: no bound).
    deep : mapping
        Depth-L analogues of ``delta``: ``τ_L(δ_L) = τ_2(δ)``.
    never : str
        Why no δ suffices, if none does.
    """

    delta: float
    eta: float
    steps: float
    steps_delta: float = math.nan
    eta_max: float = math.inf
    deep: Mapping[int, float] = field(default_factory=dict)
    never: str = ""

    def shows(self, grid: Grid) -> bool:
        """Whether the grid reaches the need: δ, η and step budget."""
        return (
            not self.never
            and self.delta <= grid.delta_max
            and self.eta_max >= grid.eta_min
            and self.steps <= grid.max_steps
        )

    def text(self) -> str:
        """E.g. 'δ ≥ 15 (L = 3: 3.4), ≈ 37000 steps at η = 0.02, δ = 15'."""
        deep = ", ".join(f"L = {d}: {fmt(v)}" for d, v in self.deep.items() if math.isfinite(v))
        parts = [f"δ ≥ {fmt(self.delta)}" + (f" ({deep})" if deep else "")] if self.delta else []
        if math.isfinite(self.eta_max):
            parts.append(f"η ≤ {fmt(self.eta_max)}")
        steps = int(self.steps) if math.isfinite(self.steps) else self.steps
        parts.append(f"≈ {fmt(steps)} steps at η = {fmt(self.eta)}, δ = {fmt(self.steps_delta)}")
        return ", ".join(parts)


def regime_verdict(rule: Rule, need: Need | None, grid: Grid, reason: str = "") -> Verdict:
    """The regime verdict of every claim: does the grid reach what the theory says it needs?

    Parameters
    ----------
    rule : Rule
        The claim's rule (a claim that is not a limit gets 'not a limit').
    need : Need or None
        What the theory says the claim needs; None when it cannot be computed.
    grid : Grid
        What the grid reaches (printed once under the claims table, not in the prose).
    reason : str, optional
        Why ``need`` is None: required then, for a limit.
    """
    if not rule.is_limit:
        return Verdict("not a limit", math.nan, rule.limit_text())
    if need is None:
        if not reason:
            raise ValueError(f"{rule.claim}: no regime and no reason why")
        return Verdict("not applicable", math.nan, f"not applicable ({reason})")
    if need.never:
        return Verdict("beyond the grid", need.delta, f"beyond the grid: {need.never}")
    if need.shows(grid):
        return Verdict("shows", need.delta, f"shows: needs {need.text()}")
    return Verdict("beyond the grid", need.delta, f"beyond the grid: needs {need.text()}")
