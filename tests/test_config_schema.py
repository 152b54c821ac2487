"""Bad configuration is refused before any job runs, with a message naming key, value, rule.

Property tests call what the workflow runs, in-process: ``lindyn.config.validated``
(Snakemake's ``validate`` against ``workflow/schemas/config.schema.yaml``, then
``lindyn.config.check_config``). Valid configurations (generated) must pass and
give unique, well-formed run paths; invalid ones (a valid configuration with one
generated defect) must be refused with a message that names the key and the
value. A few cases go through the real ``snakemake -n``.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG, make_workdir, record_reliability, run_snakemake
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lindyn.blocks import BLOCK_PATTERN, block_path, plan_blocks
from lindyn.config import DATASET_PATTERN, ConfigError, grid_cells, validated

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def refusal(config: dict) -> str | None:
    """The workflow's verdict on ``config`` (:func:`lindyn.config.validated`): None if
    accepted, else the user's message. Any other exception is a bug.
    """
    try:
        validated(config)
    except ConfigError as err:
        return str(err)
    return None


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "xy.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.standard_normal((30, 4)), Y=rng.standard_normal((30, 2)))
    return path


# ---------------------------------------------------------------- valid configurations


def _distinct(values: st.SearchStrategy, min_size: int = 1, max_size: int = 4):
    # distinct as numbers: 2 and 2.0, 0.0 and -0.0 are one value (JSON's uniqueItems)
    return st.lists(values, min_size=min_size, max_size=max_size, unique_by=float)


names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,11}\Z")
common_options = {
    "seed": st.integers(0, 1000),
    "center": st.booleans(),
    "scale": st.sampled_from(["unit", "none"]),
}
datasets = st.one_of(
    st.builds(
        lambda opts: {"loader": "commuting", "options": opts},
        st.fixed_dictionaries({}, optional={"d": st.integers(2, 30), **common_options}),
    ),
    st.builds(
        lambda opts: {"loader": "autoencoder", "options": opts},
        st.fixed_dictionaries({}, optional={"sigma": st.floats(0, 2), **common_options}),
    ),
    st.builds(
        lambda opts, w: {"loader": "digits", "options": opts, **w},
        st.fixed_dictionaries(
            {}, optional={"target": st.sampled_from(["onehot", "input"]), **common_options}
        ),
        st.fixed_dictionaries({}, optional={"width": st.integers(1, 100000)}),
    ),
    st.just({"loader": "npz", "options": {"path": "NPZ"}}),
)
integral_floats = st.integers(1, 64).map(float)  # YAML `2.0`: the schema's integers admit it
valid_configs = st.fixed_dictionaries(
    {
        "datasets": st.dictionaries(names, datasets, min_size=1, max_size=3),
        "grid": st.fixed_dictionaries(
            {
                "depth": st.lists(
                    st.one_of(st.integers(1, 64), integral_floats),
                    min_size=1,
                    max_size=4,
                    unique_by=int,
                ),
                "eta": _distinct(
                    st.one_of(st.floats(1e-6, 1e6, exclude_min=False), st.integers(1, 1000000))
                ),
                "delta": _distinct(st.one_of(st.floats(-20, 50), st.integers(-20, 50))),
                "init": st.lists(
                    st.sampled_from(["aligned", "random"]), min_size=1, max_size=2, unique=True
                ),
            },
            optional={
                "seed": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3, unique=True)
            },
        ),
        "width": st.integers(1, 100000),
        "max_steps": st.integers(1, 100_000_000),
        "log_density": st.integers(1, 1000),
    },
    optional={
        "tol": st.floats(0, 1, exclude_min=True),
        "max_components": st.integers(1, 100000),
        "aggregate": st.fixed_dictionaries({}, optional={"workers": st.integers(1, 1024)}),
        "cluster": st.fixed_dictionaries(
            {},
            optional={
                "localrules": st.lists(
                    st.sampled_from(["dataset_stats", "aggregate"]), max_size=2, unique=True
                )
            },
        ),
    },
)


def _with_npz(config: dict, npz: Path) -> dict:
    for entry in config["datasets"].values():
        if entry.get("options", {}).get("path") == "NPZ":
            entry["options"]["path"] = str(npz)
    return config


BOUNDARY = {
    "datasets": {"a": {"loader": "commuting", "options": {}}},
    "grid": {
        "depth": [1, 64],
        "eta": [1e-300, 1000000],
        "delta": [-20, 50.0],
        "init": ["aligned", "random"],
        "seed": [0, 2**32 - 1],
    },
    "width": 100000,
    "max_steps": 100_000_000,
    "log_density": 1000,
    "tol": 1.0,
    "max_components": 1,
    "aggregate": {"workers": 1024},
}


@SETTINGS
@given(config=valid_configs)
@example(config=BOUNDARY)
@example(config=copy.deepcopy(TINY_CONFIG))
def test_every_valid_configuration_is_accepted(config, npz_file):
    config = _with_npz(copy.deepcopy(config), npz_file)
    record_reliability("valid configurations accepted (in-process)")
    assert refusal(config) is None
    config = validated(config)
    # Defaults filled in, integers normalised, and every cell in exactly one block, whose
    # store has its own path matching the rule's wildcard constraints.
    assert config["tol"] > 0 and config["max_components"] >= 1
    assert all(type(d) is int for d in config["grid"]["depth"])
    paths = []
    for name in config["datasets"]:
        assert re.fullmatch(DATASET_PATTERN, name)
        blocks = plan_blocks(config, name)
        for block in blocks:
            assert re.fullmatch(BLOCK_PATTERN, block.name), block.name
            assert set(block.eta) <= {float(v) for v in config["grid"]["eta"]}
            paths.append(block_path(block))
        assert sum(block.cells for block in blocks) == len(grid_cells(config, name))
    assert len(paths) == len(set(paths)), "two blocks would write the same store"


# ---------------------------------------------------------------- one defect at a time

# Generated bad values: (value, shown) where `shown` must appear in the message.
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPE = st.sampled_from(["3", "abc", True, None, [1], {"a": 1}])


def _show(value) -> str:
    return str(value) if isinstance(value, str) else repr(value)


def _scalar_defect(draw, config):
    key, bad = draw(
        st.sampled_from(
            [
                ("width", st.one_of(st.integers(-5, 0), st.just(100001), st.just(2.5))),
                ("max_steps", st.one_of(st.integers(-10, 0), st.just(10**9), st.just(1.5))),
                ("log_density", st.one_of(st.integers(-3, 0), st.just(1001))),
                ("tol", st.one_of(st.floats(-1, 0), st.floats(1, 10, exclude_min=True))),
                ("max_components", st.integers(-3, 0)),
            ]
        )
    )
    value = draw(st.one_of(bad, NONFINITE, WRONG_TYPE))
    config[key] = value
    return key, _show(value)


def _grid_defect(draw, config):
    axis = draw(st.sampled_from(["depth", "eta", "delta", "init", "seed"]))
    config["grid"].setdefault("seed", [0])
    values = config["grid"][axis]
    bad = {
        "depth": st.one_of(st.integers(-3, 0), st.integers(65, 100), st.just(1.5)),
        "eta": st.one_of(st.floats(-1e6, 0), st.just(1e6 * 1.0001), NONFINITE),
        "delta": st.one_of(st.floats(-1e3, -20.001), st.floats(50.001, 1e3), NONFINITE),
        "init": st.sampled_from(["Aligned", "orthogonal", ""]),
        "seed": st.one_of(st.integers(-5, -1), st.just(2**32), st.just(0.5)),
    }[axis]
    kind = draw(st.sampled_from(["item", "empty", "duplicate", "not a list"]))
    if kind == "empty":
        config["grid"][axis] = []
        return f"grid.{axis}", "[]"
    if kind == "duplicate":
        config["grid"][axis] = [values[0], *values]
        return f"grid.{axis}", _show(values[0])
    if kind == "not a list":
        value = draw(st.sampled_from(["0.1", 0.1, {"a": 1}]))
        config["grid"][axis] = value
        return f"grid.{axis}", _show(value)
    value = draw(st.one_of(bad, WRONG_TYPE))
    index = draw(st.integers(0, len(values)))
    config["grid"][axis] = [*values[:index], value, *values[index:]]
    return f"grid.{axis}[{index}]", _show(value)


def _dataset_defect(draw, config, npz_file):
    name = next(iter(config["datasets"]))
    entry = config["datasets"][name]
    kind = draw(
        st.sampled_from(
            [
                "loader",
                "option",
                "option value",
                "missing file",
                "no path",
                "width",
                "name",
                "entry key",
                "no loader",
            ]
        )
    )
    if kind == "loader":
        value = draw(st.sampled_from(["nope", "MNIST", "csv", ""]))
        entry["loader"] = value
        return f"datasets.{name}.loader", _show(value)
    if kind == "option":
        value = draw(st.sampled_from(["centre", "size", "path_", "Seed"]))
        entry["options"][value] = 1
        return f"datasets.{name}.options.{value}", value
    if kind == "option value":
        key, value = draw(
            st.sampled_from(
                [
                    ("seed", -1),
                    ("n", 0),
                    ("center", "maybe"),
                    ("scale", "max"),
                    ("n", "many"),
                    ("seed", math.nan),
                ]
            )
        )
        entry["options"][key] = value
        return f"datasets.{name}.options.{key}", _show(value)
    if kind in ("missing file", "no path"):
        entry["loader"] = draw(st.sampled_from(["npz", "mnist_idx", "cifar10", "imagenet32"]))
        options = {k: v for k, v in entry.get("options", {}).items() if k in ("seed", "center")}
        if kind == "no path":
            entry["options"] = options
            return f"datasets.{name}.options.path", "required"
        missing = str(npz_file.parent / draw(st.sampled_from(["gone.npz", "x/y.bin", "batch"])))
        entry["options"] = {**options, "path": missing}
        return f"datasets.{name}.options.path", missing
    if kind == "width":
        value = draw(st.one_of(st.integers(-3, 0), WRONG_TYPE))
        entry["width"] = value
        return f"datasets.{name}.width", _show(value)
    if kind == "name":
        value = draw(st.sampled_from(["bad-name", "1st", "_x", "a b", "é"]))
        config["datasets"][value] = config["datasets"].pop(name)
        return f"datasets.{value}", value
    if kind == "entry key":
        entry["option"] = {}
        return f"datasets.{name}.option", "unknown key"
    del entry["loader"]
    return f"datasets.{name}.loader", "missing"


def _structure_defect(draw, config):
    kind = draw(
        st.sampled_from(["unknown top", "unknown grid", "missing", "type", "empty", "cluster"])
    )
    if kind == "unknown top":
        key = draw(st.sampled_from(["colour", "eta", "Width", "max_step", "grid_"]))
        config[key] = 1
        return key, "unknown key"
    if kind == "unknown grid":
        key = draw(st.sampled_from(["etas", "seeds", "width"]))
        config["grid"][key] = [1]
        return f"grid.{key}", "unknown key"
    if kind == "missing":
        key = draw(st.sampled_from(["datasets", "grid", "width", "grid.eta", "grid.depth"]))
        if "." in key:
            del config["grid"][key.split(".")[1]]
        else:
            del config[key]
        return key, "missing"
    if kind == "cluster":
        value = draw(st.sampled_from(["simulate", "all", "report_"]))
        config["cluster"] = {"localrules": [value]}
        return "cluster.localrules[0]", value
    if kind == "type":
        key = draw(st.sampled_from(["datasets", "grid", "aggregate", "cluster"]))
        value = draw(st.sampled_from([5, "x", [1]]))
        config[key] = value
        return key, _show(value)
    config["datasets"] = {}
    return "datasets", "{}"


@st.composite
def invalid_configs(draw, npz_file):
    config = _with_npz(copy.deepcopy(draw(valid_configs)), npz_file)
    area = draw(st.sampled_from(["scalar", "grid", "dataset", "structure"]))
    if area == "scalar":
        key, shown = _scalar_defect(draw, config)
    elif area == "grid":
        key, shown = _grid_defect(draw, config)
    elif area == "dataset":
        key, shown = _dataset_defect(draw, config, npz_file)
    else:
        key, shown = _structure_defect(draw, config)
    return config, key, shown


@SETTINGS
@given(data=st.data())
def test_every_invalid_configuration_is_refused_naming_key_and_value(data, npz_file):
    config, key, shown = data.draw(invalid_configs(npz_file))
    record_reliability("bad configurations tried (in-process)")
    message = refusal(config)
    assert message is not None, f"accepted: {key} = {shown}"
    assert f"'{key}'" in message, message
    assert shown in message, message
    assert "Traceback" not in message
    # One line per problem, each naming a key.
    assert all(line.lstrip().startswith("config key") for line in message.splitlines()[1:])


def test_all_schema_violations_are_listed_at_once():
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["eta"] = [0.1, -0.2]
    config["width"] = 0
    config["colour"] = "red"
    message = refusal(config)
    assert "'grid.eta[1]': -0.2 is not allowed (must be > 0)" in message
    assert "'width': 0 is not allowed (must be >= 1)" in message
    assert "'colour': unknown key" in message


def test_integral_floats_are_integers():
    config = copy.deepcopy(TINY_CONFIG)
    config["width"], config["grid"]["depth"] = 3.0, [1.0, 2]
    assert refusal(config) is None
    config = validated(config)
    assert config["width"] == 3 and type(config["width"]) is int
    assert [type(d) for d in config["grid"]["depth"]] == [int, int]


def test_non_string_keys_are_refused():
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"][7] = config["datasets"].pop("digits")
    message = refusal(config)
    assert "'datasets'" in message and "7" in message


# ---------------------------------------------------------------- through snakemake


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c, _: c.update(tol=math.nan),  # written to YAML as `.nan`
            ["config key 'tol': nan is not allowed; allowed: finite numbers"],
        ),
        (
            lambda c, _: (c["grid"].update(eta=[0.1, -0.2]), c.update(colour="red")),
            [
                "config key 'grid.eta[1]': -0.2 is not allowed (must be > 0); "
                "allowed: a number > 0 and <= 1000000",
                "config key(s) 'colour': unknown key",
            ],
        ),
        (
            lambda c, tmp: c["datasets"].update(
                mine={"loader": "npz", "options": {"path": str(tmp / "absent.npz")}}
            ),
            ["config key 'datasets.mine.options.path'", "absent.npz does not exist"],
        ),
    ],
)
def test_snakemake_refuses_bad_configuration_with_a_clear_message(tmp_path, edit, expected):
    config = copy.deepcopy(TINY_CONFIG)
    edit(config, tmp_path)
    workdir = make_workdir(tmp_path / "wd", config)
    record_reliability("bad configurations tried (snakemake -n)")
    proc = run_snakemake(workdir, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for text in expected:
        assert text in out, out
    assert "invalid configuration:" in out
    assert "Traceback" not in out and "lindyn/config.py" not in out, out
    assert not (workdir / "results").exists()
