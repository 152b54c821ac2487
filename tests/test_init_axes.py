"""The initialisation axes: unbalanced layers (ratio) and widths, from the init to the query.

Init: ratio 1 is the balanced init bit for bit, a ratio gives geometric layer scales with
the product's scale unchanged, gradient descent keeps the imbalance up to O(η²). Measures:
the effective rank on known spectra, sequential pairs. Grid: blocks, config errors, the
aggregated learning table and ``lindyn query`` on an in-process results directory with a
ratio and a width axis, and a balanced block made before the ratio axis existed.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import IN_PROCESS_CONFIG
from test_config_schema import refusal

import lindyn
from lindyn import plots
from lindyn.aggregate import combine_blocks
from lindyn.blocks import BLOCK_PATTERN, block_path, plan_blocks
from lindyn.config import grid_cells, validated
from lindyn.init import balancedness, init_layers, layer_scales, layer_shapes
from lindyn.learning import effective_rank, sequential_pairs
from lindyn.paths import aggregate_path, stats_path
from lindyn.query import query_table, stale_runs
from lindyn.report.figures import make_figure
from lindyn.report.loading import load_dataset
from lindyn.store import open_block, open_store, write_block

# ---------------------------------------------------------------- the init


@pytest.fixture(scope="module")
def stats():
    data = lindyn.load_dataset("commuting", d=6, p=4, n=80, seed=3)
    return lindyn.dataset_stats(data.X, data.Y)


def _balanced_before_the_ratio(stats, depth, width, delta, mode, seed):
    """init_layers as it was before the ratio axis (commit 7c0278b), verbatim."""
    shapes = layer_shapes(stats.d, stats.p, depth, width)
    a0 = float(np.exp(-delta))
    if mode == "random":
        rng = np.random.default_rng(seed)
        return [a0 * rng.standard_normal(shape) / np.sqrt(max(shape)) for shape in shapes]
    m = stats.m
    if depth == 1:
        r = min(width, m)
        return [a0 * stats.U[:, :r] @ stats.V[:, :r].T]
    r = min(width, m)
    first = np.zeros(shapes[0])
    first[:, :r] = a0 * stats.U[:, :r]
    last = np.zeros(shapes[-1])
    last[:r, :] = a0 * stats.V[:, :r].T
    middle = [a0 * np.eye(width) for _ in range(depth - 2)]
    return [first, *middle, last]


@pytest.mark.parametrize("mode", ["aligned", "random"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("width", [2, 4, 9])
def test_ratio_one_is_todays_init_bit_for_bit(stats, mode, depth, width):
    for delta, seed in ((0.5, 0), (3.0, 7)):
        before = _balanced_before_the_ratio(stats, depth, width, delta, mode, seed)
        for layers in (
            init_layers(stats, depth, width, delta, mode, seed),
            init_layers(stats, depth, width, delta, mode, seed, ratio=1.0),
            init_layers(stats, depth, width, delta, mode, seed, ratio=1),
        ):
            assert len(layers) == len(before)
            for new, old in zip(layers, before, strict=True):
                assert new.dtype == old.dtype and new.shape == old.shape
                assert new.tobytes() == old.tobytes()


@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("ratio", [0.25, 4.0, 16.0])
def test_ratio_gives_geometric_scales_with_the_products_scale(stats, depth, ratio):
    delta = 1.5
    scales = np.array(layer_scales(depth, delta, ratio))
    assert scales[0] / scales[-1] == pytest.approx(ratio, rel=1e-12)
    np.testing.assert_allclose(scales[:-1] / scales[1:], ratio ** (1 / (depth - 1)), rtol=1e-12)
    assert np.prod(scales) == pytest.approx(math.exp(-depth * delta), rel=1e-12)
    layers = init_layers(stats, depth, 3, delta, "aligned", ratio=ratio)
    for layer, scale in zip(layers, scales, strict=True):
        top = np.linalg.svd(layer, compute_uv=False)
        np.testing.assert_allclose(top[: min(3, stats.m)], scale, rtol=1e-12)
    product = np.linalg.multi_dot(layers)
    u0 = np.einsum("di,dp,pi->i", stats.U[:, :3], product, stats.V[:, :3])
    np.testing.assert_allclose(u0, math.exp(-depth * delta), rtol=1e-10)
    # The random init: the same draw, rescaled per layer.
    balanced = init_layers(stats, depth, 5, delta, "random", seed=2)
    unbalanced = init_layers(stats, depth, 5, delta, "random", seed=2, ratio=ratio)
    for a, b, scale in zip(balanced, unbalanced, scales, strict=True):
        np.testing.assert_allclose(b, a * scale / math.exp(-delta), rtol=1e-12)


def test_depth_one_ignores_the_ratio_and_bad_ratios_are_refused(stats):
    for mode in ("aligned", "random"):
        one = init_layers(stats, 1, 3, 2.0, mode, 1)
        np.testing.assert_array_equal(init_layers(stats, 1, 3, 2.0, mode, 1, ratio=9.0)[0], one[0])
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="ratio must be a finite number > 0"):
            layer_scales(2, 1.0, bad)


def _gd_step(stats, layers, eta):
    """One plain gradient-descent step (THEORY §1), every layer from the same iterate."""
    grad = stats.sigma_x @ _product(layers, stats.d) - stats.sigma_xy
    return [
        layer
        - eta * _product(layers[:i], stats.d).T @ grad @ _product(layers[i + 1 :], layer.shape[1]).T
        for i, layer in enumerate(layers)
    ]


def _product(layers, size):
    """W_a ⋯ W_b, the identity of ``size`` if empty."""
    out = np.eye(size)
    for layer in layers:
        out = out @ layer
    return out


@pytest.mark.parametrize("depth", [2, 3])
def test_gradient_descent_keeps_the_imbalance_up_to_eta_squared(stats, depth):
    """W_lᵀW_l − W_{l+1}W_{l+1}ᵀ drifts by O(η²) per step: halving η quarters the drift
    over the same flow time."""
    drifts = []
    for eta in (0.02, 0.01):
        layers = init_layers(stats, depth, 4, 0.5, "random", seed=1, ratio=4.0)
        start = balancedness(layers)
        for _ in range(round(2.0 / eta)):
            layers = _gd_step(stats, layers, eta)
        moved = np.linalg.norm(np.linalg.multi_dot(layers)) > 0.1
        assert moved
        drifts.append(
            max(np.abs(d - s).max() for d, s in zip(balancedness(layers), start, strict=True))
        )
        assert max(np.abs(s).max() for s in start) > 0.1  # the imbalance itself is O(1)
    # Per flow time: drift ~ (steps) η² = (T/η) η² = T η, so halving η halves it.
    assert drifts[1] / drifts[0] == pytest.approx(0.5, rel=0.1)
    assert drifts[0] < 1e-2


# ---------------------------------------------------------------- the measures


def test_effective_rank_on_known_spectra():
    assert effective_rank([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_rank([2.0, 2.0, 0.0]) == pytest.approx(2.0)
    assert effective_rank(np.full(7, 0.3)) == pytest.approx(7.0)
    p = np.array([0.75, 0.25])
    assert effective_rank([3.0, 1.0]) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    batch = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [np.nan] * 3, [0.0] * 3])
    np.testing.assert_allclose(effective_rank(batch), [3.0, 1.0, np.nan, np.nan])
    # Along another axis, and invariant under scaling and order.
    np.testing.assert_allclose(effective_rank(batch[:2].T, axis=0), [3.0, 1.0])
    assert effective_rank([1e-30, 3e-30]) == pytest.approx(effective_rank([3.0, 1.0]))


def test_sequential_pairs():
    component = {"component": [1, 2, 3, 4]}
    t10 = xr.DataArray([1.0, 10.0, 12.0, np.nan], coords=component)
    t50 = xr.DataArray([5.0, 20.0, 30.0, np.nan], coords=component)
    t90 = xr.DataArray([8.0, 25.0, 40.0, np.nan], coords=component)
    np.testing.assert_array_equal(sequential_pairs(t10, t50, t90).values, [1, 0, np.nan, np.nan])
    disjoint = sequential_pairs(t10, t50, t90, disjoint=True).values
    np.testing.assert_array_equal(disjoint, [1, 0, np.nan, np.nan])


# ---------------------------------------------------------------- configuration and blocks

AXES_CONFIG = copy.deepcopy(IN_PROCESS_CONFIG)
AXES_CONFIG["grid"] |= {"depth": [2], "eta": [0.1], "delta": [2.0, 3.0], "ratio": [1, 4.0]}
AXES_CONFIG["datasets"]["commuting"]["width"] = [3, 5]


def test_blocks_carry_ratio_and_width_and_keep_the_balanced_names():
    config = validated(AXES_CONFIG)
    blocks = plan_blocks(config, "commuting")
    assert {(b.width, b.ratio) for b in blocks} == {(3, 1.0), (3, 4.0), (5, 1.0), (5, 4.0)}
    assert sum(b.cells for b in blocks) == len(grid_cells(config, "commuting")) == 24
    for block in blocks:
        assert re.fullmatch(BLOCK_PATTERN, block.name), block.name
        assert ("_r4.0_" in block.name) == (block.ratio == 4.0)
        assert ("--ratio 4.0" in block.sweep_arguments()) == (block.ratio == 4.0)
        assert ("ratio" in block.expected()) == (block.ratio == 4.0)
    # Without the axes: exactly the blocks the pipeline planned before they existed.
    before = copy.deepcopy(AXES_CONFIG)
    del before["grid"]["ratio"], before["datasets"]["commuting"]["width"]
    old = {b.name: b.sweep_arguments() for b in plan_blocks(validated(before), "commuting")}
    assert old == {b.name: b.sweep_arguments() for b in blocks if b.width == 3 and b.ratio == 1.0}
    assert all(name.startswith(("aligned_w3_L", "random_w3_L")) for name in old)


@pytest.mark.parametrize(
    ("where", "value", "shown"),
    [
        ("grid.ratio", [1, 0], "'grid.ratio[1]': 0 is not allowed (must be > 0)"),
        ("grid.ratio", [1, -2.5], "'grid.ratio[1]': -2.5 is not allowed (must be > 0)"),
        ("grid.ratio", [1, 2e6], "'grid.ratio[1]': 2000000.0 is not allowed (must be <= 1000000)"),
        ("grid.ratio", [1, "x"], "'grid.ratio[1]': 'x' is not allowed (must be a number)"),
        ("grid.ratio", [], "'grid.ratio': [] is not allowed (must have at least 1 item(s))"),
        ("grid.ratio", [2, 4], "'grid.ratio': [2, 4] is not allowed (it lacks 1"),
        ("grid.ratio", [1, 1.0], "'grid.ratio': [1, 1.0] is not allowed (values must be distinct)"),
        ("grid.ratio", [1, 0.5, 0.50], "'grid.ratio': [1, 0.5, 0.5] is not allowed"),
        ("grid.ratio", [1, math.nan], "'grid.ratio[1]': nan is not allowed"),
        ("datasets.commuting.ratio", [4], "'datasets.commuting.ratio': [4] is not allowed"),
        ("datasets.commuting.ratio", [1, 0], "'datasets.commuting.ratio[1]': 0 is not allowed"),
        ("width", [3, 0], "'width[1]': 0 is not allowed (must be >= 1)"),
        ("width", 0, "'width': 0 is not allowed (must be >= 1)"),
        ("width", "3", "'width': '3' is not allowed; allowed: an integer >= 1"),
        ("datasets.commuting.width", [3, 3], "'datasets.commuting.width': [3, 3] is not allowed"),
    ],
)
def test_bad_axis_values_name_the_key_and_what_is_allowed(where, value, shown):
    config = copy.deepcopy(IN_PROCESS_CONFIG)
    *parents, key = where.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[key] = value
    message = refusal(config)
    assert message is not None and shown in message, message
    assert "allowed:" in message and "Traceback" not in message


def test_width_lists_and_integral_floats_are_normalised():
    config = copy.deepcopy(IN_PROCESS_CONFIG)
    config["width"] = [3.0, 6]
    config["grid"]["ratio"] = [4, 1]
    config = validated(config)
    assert config["width"] == [3, 6] and all(type(w) is int for w in config["width"])
    blocks = plan_blocks(config, "commuting")
    assert [b.ratio for b in blocks[:2]] == [4.0, 4.0]


# ---------------------------------------------------------------- aggregation and query


@pytest.fixture(scope="module")
def axes_results(tmp_path_factory):
    """AXES_CONFIG's results directory, made as the workflow's jobs make it."""
    from lindyn.aggregate import aggregate
    from lindyn.cli import main

    root = tmp_path_factory.mktemp("init_axes")
    (root / "config.yaml").write_text(yaml.safe_dump(AXES_CONFIG, sort_keys=False))
    config = validated(AXES_CONFIG)
    results = root / "results"
    entry = config["datasets"]["commuting"]
    stats = str(stats_path(results, "commuting"))
    options = json.dumps(entry["options"])
    assert main(["dataset", "commuting", "--options", options, "--out", stats]) == 0
    blocks = plan_blocks(config, "commuting")
    settings = [
        f"--{key.replace('_', '-')}={config[key]}"
        for key in ("max_steps", "log_density", "tol", "max_components")
    ]
    for block in blocks:
        out = block_path(block, str(results))
        args = ["sweep", "--stats", stats, "--label", "commuting", *block.sweep_arguments().split()]
        assert main([*args, *settings, "--out", out]) == 0
    aggregate([(block_path(block, str(results)), block) for block in blocks], results)
    return results


def test_learning_table_carries_the_axes_and_matches_the_trajectories(axes_results):
    learning = open_store(aggregate_path(axes_results, "commuting", "learning"), "aggregated")
    traj = open_store(aggregate_path(axes_results, "commuting", "trajectories"), "aggregated")
    for ds in (learning, traj):
        assert ds["ratio"].values.tolist() == [1.0, 4.0]
        assert ds["width"].values.tolist() == [3, 5]
    ran = learning["status"] != "missing"
    assert int(ran.sum()) == 24
    # The effective rank in the store is the formula's on the stored singular values.
    np.testing.assert_allclose(
        traj["effective_rank"].values, effective_rank(traj["singular_values"].values)
    )
    peak = traj["effective_rank"].where(traj["status"] != "diverged").max("step")
    np.testing.assert_allclose(
        learning["peak_effective_rank"].where(ran).values, peak.where(ran).values
    )
    assert np.all((learning["sequential_fraction"] >= 0) | learning["sequential_fraction"].isnull())
    # The unbalanced init at ratio 4 changes the runs, at depth 2.
    cell = {"depth": 2, "eta": 0.1, "delta": 3.0, "init": "aligned", "seed": 0, "width": 3}
    u = traj["u"].sel(cell)
    assert not np.allclose(u.sel(ratio=1.0).values, u.sel(ratio=4.0).values, equal_nan=True)
    np.testing.assert_allclose(u.sel(ratio=4.0, step=0), u.sel(ratio=1.0, step=0), rtol=1e-10)


def test_query_selects_the_axes_and_lists_them(axes_results):
    frame = query_table(axes_results, "learning", {"ratio": ["4"], "width": ["5"]})
    assert set(frame["ratio"]) == {4.0} and set(frame["width"]) == {5}
    assert {"sequential_fraction", "peak_effective_rank", "effective_rank_at_first"} <= set(frame)
    assert len(frame) == 6  # 2 δ × (aligned + 2 random seeds)
    phase = query_table(axes_results, "phase", {"ratio": ["4"]})
    assert set(phase["ratio"]) == {4.0}
    runs = stale_runs(axes_results, validated(AXES_CONFIG))
    assert len(runs) == 24 and not runs["stale"].any()
    assert set(zip(runs["width"], runs["ratio"], strict=True)) == {
        (3, 1.0),
        (3, 4.0),
        (5, 1.0),
        (5, 4.0),
    }


def test_the_init_figure_draws_each_axis(axes_results, tmp_path):
    res = load_dataset(axes_results, "commuting")
    fig = plots.figure_init({"commuting": (res.learning, res.all_trajectories)})
    erank_aligned, erank_random, onset = fig.axes[:3]
    labels = [line.get_label() for line in erank_aligned.get_lines()]
    assert labels == ["ratio 1", "ratio 4"]
    assert [line.get_label() for line in erank_random.get_lines()] == ["width 3", "width 5"]
    for line in (*erank_aligned.get_lines(), *erank_random.get_lines()):
        assert np.nanmin(line.get_ydata()) >= 1.0 - 1e-9  # an effective rank
    # one onset line per depth ≥ 2, init and width, each over the two ratios
    assert len(onset.get_lines()) == 2 * 2
    written = make_figure("fig11_init", axes_results, ["commuting"], [tmp_path / "fig11.png"])
    assert written[0].stat().st_size > 20_000


def test_a_balanced_block_made_before_the_ratio_axis_still_combines(axes_results, tmp_path):
    config = validated(AXES_CONFIG)
    pairs = []
    for block in plan_blocks(config, "commuting"):
        path = block_path(block, str(axes_results))
        if block.ratio == 1.0 and block.width == 3 and block.init == "aligned":
            old = open_block(path).load().drop_vars("ratio")  # as stored before the axis
            path = tmp_path / f"{block.name}.zarr.zip"
            write_block(old, path)
            assert "ratio" not in open_block(path, block.expected()).coords
        pairs.append((path, block))
    combined = combine_blocks(pairs).compute()
    reference = combine_blocks(
        [(block_path(b, str(axes_results)), b) for b in plan_blocks(config, "commuting")]
    ).compute()
    assert combined["ratio"].values.tolist() == [1.0, 4.0]
    xr.testing.assert_identical(combined["u"], reference["u"])
