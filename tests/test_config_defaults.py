"""Every configuration default has one home, the schema; everything else reads it from there."""

from __future__ import annotations

import copy
import inspect
from dataclasses import fields

import pytest
from conftest import REPO, TINY_CONFIG

from lindyn.cli import build_parser
from lindyn.config import (
    SCHEMA_PATH,
    ConfigError,
    allowed,
    default,
    describe,
    load_config,
    schema,
    validated,
)
from lindyn.datasets import LOADERS
from lindyn.init import INIT_MODES
from lindyn.sweeps import BUDGETS, STOPS, RunSettings, sweep

SETTINGS = [field.name for field in fields(RunSettings)]


def _defaults(node: dict, prefix: str = "") -> dict[str, object]:
    """Every leaf default of the schema, by dotted key."""
    out = {}
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        if "properties" in sub:
            out.update(_defaults(sub, f"{name}."))
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def test_the_workflow_validates_against_the_package_schema():
    assert (REPO / "workflow/schemas/config.schema.yaml").resolve() == SCHEMA_PATH.resolve()


def test_validated_fills_every_schema_default_and_leaves_its_input_alone():
    raw = {key: copy.deepcopy(TINY_CONFIG[key]) for key in ("datasets", "grid", "width")}
    del raw["grid"]["seed"]
    before = copy.deepcopy(raw)
    config = validated(raw)
    assert raw == before
    leaves = _defaults(schema())
    assert {"max_steps", "tol", "blocks.eta", "aggregate.slurm.memory"} <= set(leaves)
    for key, value in leaves.items():
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert config["grid"]["seed"] == default("grid.seed")


@pytest.mark.parametrize("setting", SETTINGS)
def test_run_settings_and_sweep_default_to_the_schema(setting):
    assert getattr(RunSettings(), setting) == default(setting)
    assert inspect.signature(sweep).parameters[setting].default == default(setting)


@pytest.mark.parametrize("setting", SETTINGS)
def test_cli_sweep_options_default_to_the_schema(setting):
    cell = ["--depth", "2", "--eta", "0.1", "--delta", "1"]
    args = build_parser().parse_args(["sweep", "--dataset", "commuting", *cell, "--out", "x"])
    assert getattr(args, setting) == default(setting)
    spec = describe(setting)
    assert isinstance(getattr(args, setting), str if "enum" in spec else (int, float))


def test_cli_aggregate_workers_default_to_the_schema():
    args = build_parser().parse_args(["aggregate", "digits"])
    assert args.workers == default("aggregate.workers")


def test_enumerations_come_from_the_schema():
    assert BUDGETS == allowed("budget") and STOPS == allowed("stop")
    assert INIT_MODES == allowed("grid.init")


def test_an_unknown_loader_is_refused_naming_every_loader():
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"]["digits"]["loader"] = "mnist_full"
    with pytest.raises(ConfigError) as refused:
        validated(config)
    message = str(refused.value)
    assert "'datasets.digits.loader': 'mnist_full' is not allowed" in message
    assert all(name in message for name in LOADERS)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("datasets: {}\n")
    with pytest.raises(ConfigError, match=f"^{path}: invalid configuration"):
        load_config(path)


def test_default_of_a_key_without_one_is_a_key_error():
    with pytest.raises(KeyError):
        default("width")
