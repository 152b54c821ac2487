"""The ``lindyn`` command line: the contract the workflow and users rely on.

Subcommands: ``dataset``, ``sweep``, ``aggregate``, ``plan``, ``query``, ``run``. Heavy modules
are imported inside each subcommand.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

__all__ = ["main"]

_TYPES = {"integer": int, "number": float}


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (repeatable), e.g. center=true, scale=unit, n=1000, path=FILE",
    )
    parser.add_argument(
        "--options",
        type=_json_mapping,
        default={},
        metavar="JSON",
        help='dataset options as one typed JSON mapping, e.g. \'{"center": true, "n": 1000}\' '
        "(how the workflow passes config.yaml's options); --option items override it",
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """The run settings of config.yaml as options; type, default, choices, help: the schema's."""
    from lindyn.config import describe
    from lindyn.sweeps import RunSettings

    for field in fields(RunSettings):
        spec = describe(field.name)
        kind = {"choices": spec["enum"]} if "enum" in spec else {"type": _TYPES[spec["type"]]}
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            default=spec["default"],
            help=f"{spec['description']} (config {field.name}; default %(default)s)",
            **kind,
        )


def _json_mapping(text: str) -> dict:
    import json

    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON mapping")
    return value


def _load_stats(name: str, typed: dict, options: list[str], both_centrings: bool = False):
    """Load a dataset and compute its statistics.

    With ``both_centrings``, ε_A1 and ε_iso are also computed for the other
    centring and recorded in the metadata (``eps_by_centring``) for Table 1.
    """
    from lindyn.datasets import load_dataset, parse_options
    from lindyn.stats import dataset_stats

    parsed = {**typed, **parse_options(name, options)}
    data = load_dataset(name, **parsed)
    stats = dataset_stats(data.X, data.Y, data.X_clean, data.meta, data.X_test, data.Y_test)
    if both_centrings:
        center = bool(data.meta.get("center", False))
        other = load_dataset(name, **{**parsed, "center": not center})
        alt = dataset_stats(other.X, other.Y, meta=other.meta)
        by_centring = {center: stats, not center: alt}
        stats.meta["eps_by_centring"] = {
            "raw": {"eps_a1": by_centring[False].eps_a1, "eps_iso": by_centring[False].eps_iso},
            "centred": {"eps_a1": by_centring[True].eps_a1, "eps_iso": by_centring[True].eps_iso},
            "norm": "Frobenius (not squared)",
        }
    return stats


def _cmd_dataset(args: argparse.Namespace) -> None:
    from lindyn.store import write_stats

    start = time.perf_counter()
    stats = _load_stats(args.name, args.options, args.option, both_centrings=True)
    if args.label:
        stats.meta["label"] = args.label
    write_stats(stats, args.out)
    print(
        f"{args.name}: n={stats.meta.get('n')} d={stats.d} p={stats.p} rank={stats.rank} "
        f"eps_a1={stats.eps_a1:.4g} eps_iso={stats.eps_iso:.4g} "
        f"({time.perf_counter() - start:.1f} s) -> {args.out}"
    )


def _cmd_sweep(args: argparse.Namespace) -> None:
    from lindyn.store import read_stats, write_block
    from lindyn.sweeps import sweep

    if (args.stats is None) == (args.dataset is None):
        raise ValueError("give exactly one of --stats STATS.zarr.zip or --dataset NAME")
    if args.stats is not None:
        stats = read_stats(args.stats, dataset=args.label)
    else:
        stats = _load_stats(args.dataset, args.options, args.option)
    name = args.label or stats.meta.get("label") or stats.meta.get("name", "")
    runs = sweep(
        stats,
        args.depth,
        args.eta,
        args.delta,
        args.init,
        args.seed,
        args.width,
        ratio=args.ratio,
        max_steps=args.max_steps,
        log_density=args.log_density,
        tol=args.tol,
        max_components=args.max_components,
        budget=args.budget,
        budget_margin=args.budget_margin,
        stop=args.stop,
        kernel=args.kernel,
        dataset=name,
    )
    write_block(runs, args.out)
    statuses = dict(zip(*np.unique(runs["status"].values, return_counts=True), strict=True))
    print(
        f"{name} {args.init}: {runs['status'].size} runs "
        + ", ".join(f"{count} {status}" for status, count in statuses.items())
        + f" ({runs.attrs['elapsed_seconds']:.2f} s) -> {args.out}"
    )


def _cmd_generalise(args: argparse.Namespace) -> None:
    from lindyn.generalisation import study, summary
    from lindyn.store import read_stats, write_atomically, write_store

    stats = read_stats(args.stats, dataset=args.label)
    ds = study(
        stats,
        args.depth,
        args.eta,
        args.delta,
        args.width,
        args.max_steps,
        args.log_density,
        args.tol,
    )
    write_store(ds, args.out)
    table = summary(ds)
    write_atomically(args.csv, lambda tmp: table.to_csv(tmp, index=False))
    print(table.to_string(index=False))


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from lindyn.aggregate import aggregate
    from lindyn.blocks import block_path, plan_blocks
    from lindyn.config import load_config

    config = load_config(args.config)
    if args.dataset not in config["datasets"]:
        raise ValueError(f"dataset {args.dataset!r} is not in {args.config}")
    blocks = plan_blocks(config, args.dataset)
    aggregate(
        blocks=[(block_path(block, args.results), block) for block in blocks],
        results=args.results,
        workers=args.workers,
    )


def _cmd_plan(args: argparse.Namespace) -> None:
    import subprocess

    from lindyn.blocks import scheduled_cells

    extra = args.snakemake[1:] if args.snakemake[:1] == ["--"] else args.snakemake
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1", *extra],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake --dry-run failed:\n{proc.stdout}{proc.stderr}")
    scheduled = scheduled_cells(proc.stdout)
    for dataset, (blocks, cells) in sorted(scheduled.items()):
        print(f"{dataset}: {cells} cells in {blocks} blocks to simulate")
    total = sum(cells for _, cells in scheduled.values())
    print(f"total: {total} cells in {sum(b for b, _ in scheduled.values())} blocks to simulate")


def _cmd_query(args: argparse.Namespace) -> None:
    from lindyn.query import query_main

    query_main(args)


def _cmd_run(args: argparse.Namespace) -> int:
    import shlex

    from lindyn.runlock import run_pipeline

    extra = args.snakemake[1:] if args.snakemake[:1] == ["--"] else args.snakemake
    return run_pipeline(
        Path(args.directory),
        args.cores,
        extra,
        report=None if args.no_report else Path(args.report),
        wait=args.wait,
        command=shlex.join(sys.argv),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lindyn`` command."""
    from lindyn.config import default, describe
    from lindyn.init import INIT_MODES
    from lindyn.paths import QUERY_TABLES
    from lindyn.runs import BALANCED

    parser = argparse.ArgumentParser(
        prog="lindyn", description="Gradient-descent dynamics of deep linear networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="compute a dataset's statistics store")
    p.add_argument("name", help="loader name: commuting, autoencoder, digits, mnist_sample, ...")
    _add_dataset_arguments(p)
    p.add_argument("--label", help="name of this dataset in the grid (default: loader name)")
    p.add_argument("--out", required=True, help="output statistics store (STATS.zarr.zip)")
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser("sweep", help="simulate a grid of runs and write one block store")
    p.add_argument("--stats", help="statistics store of the dataset (from `lindyn dataset`)")
    p.add_argument("--dataset", help="loader name, to compute the statistics on the fly")
    _add_dataset_arguments(p)
    p.add_argument("--label", help="dataset name recorded in the store")
    p.add_argument("--depth", type=int, nargs="+", required=True, help="numbers of layers L >= 1")
    p.add_argument("--eta", type=float, nargs="+", required=True, help="absolute step sizes > 0")
    p.add_argument("--delta", type=float, nargs="+", required=True, help="init scales δ")
    p.add_argument("--init", choices=INIT_MODES, default=INIT_MODES[0])
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds of the random init")
    p.add_argument("--width", type=int, default=None, help="hidden width (default min(d, p))")
    p.add_argument(
        "--ratio",
        type=float,
        default=BALANCED,
        help="per-layer scale ratio of the init, first layer over last (default %(default)s: "
        "balanced)",
    )
    _add_settings(p)
    p.add_argument("--kernel", choices=["auto", "numba", "numpy"], default="auto")
    p.add_argument("--out", required=True, help="output block store (BLOCK.zarr.zip)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "generalise", help="a dataset's generalisation study: paths to convergence, estimators"
    )
    p.add_argument("--stats", required=True, help="statistics store with a test set")
    p.add_argument("--label", help="dataset name the store must be of")
    for key, kind, nargs in (
        ("depth", int, "+"),
        ("eta", float, None),
        ("delta", float, None),
        ("width", int, None),
        ("max_steps", int, None),
        ("log_density", int, None),
        ("tol", float, None),
    ):
        name = f"generalisation.{key}"
        p.add_argument(
            f"--{key.replace('_', '-')}",
            type=kind,
            nargs=nargs,
            default=default(name),
            help=f"{describe(name)['description']} (config {name}; default %(default)s)",
        )
    p.add_argument("--out", required=True, help="output store (STUDY.zarr.zip)")
    p.add_argument("--csv", required=True, help="output summary table (.csv)")
    p.set_defaults(func=_cmd_generalise)

    p = sub.add_parser("aggregate", help="combine one dataset's block stores (Dask)")
    p.add_argument("dataset", help="dataset name in the configuration")
    p.add_argument("--config", default="config.yaml", help="pipeline configuration")
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument(
        "--workers",
        type=int,
        default=default("aggregate.workers"),
        help="Dask workers (config aggregate.workers; default %(default)s)",
    )
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser(
        "plan", help="how many cells the next pipeline run would simulate (Snakemake's dry run)"
    )
    p.add_argument(
        "snakemake", nargs=argparse.REMAINDER, help="further snakemake arguments, after --"
    )
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("query", help="print tables from aggregated results")
    p.add_argument("table", choices=QUERY_TABLES)
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument("--where", "-w", action="append", default=[], metavar="AXIS=VALUE")
    p.add_argument("--format", choices=["text", "csv"], default="text")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser(
        "run",
        help="run the pipeline (as `make run`), never beside a live run in the same directory",
    )
    p.add_argument("--cores", "-c", default="all", help="Snakemake's --cores (default all)")
    p.add_argument("--directory", "-d", default=".", help="pipeline directory (default .)")
    p.add_argument("--wait", action="store_true", help="wait for a live run instead of refusing")
    p.add_argument("--report", default="results/report.html", help="report written after the run")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument(
        "snakemake", nargs=argparse.REMAINDER, help="further arguments of the run, after --"
    )
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lindyn`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"lindyn {args.command}: error: {err}", file=sys.stderr)
        return 2
    return status or 0  # a subcommand that runs others (`run`) returns their status


if __name__ == "__main__":
    sys.exit(main())
