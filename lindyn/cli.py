"""The ``lindyn`` command line: the contract the workflow and users rely on.

Subcommands: ``dataset``, ``simulate``, ``aggregate``, ``query``. Heavy
modules are imported inside each subcommand so that ``lindyn simulate`` starts
with numpy, xarray and zarr only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (repeatable), e.g. center=true, scale=unit, n=1000, path=FILE",
    )


def _load_stats(name: str, options: list[str], both_centrings: bool = False):
    """Load a dataset and compute its statistics.

    With ``both_centrings``, ε_A1 and ε_iso are also computed for the other
    centring and recorded in the metadata (``eps_by_centring``) for Table 1.
    """
    from lindyn.datasets import load_dataset, parse_options
    from lindyn.stats import dataset_stats

    parsed = parse_options(name, options)
    data = load_dataset(name, **parsed)
    stats = dataset_stats(data.X, data.Y, data.X_clean, data.meta)
    if both_centrings:
        center = bool(data.meta.get("center", False))
        other = load_dataset(name, **{**parsed, "center": not center})
        alt = dataset_stats(other.X, other.Y)
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
    stats = _load_stats(args.name, args.option, both_centrings=True)
    if args.label:
        stats.meta["label"] = args.label
    write_stats(stats, args.out)
    print(
        f"{args.name}: n={stats.meta.get('n')} d={stats.d} p={stats.p} rank={stats.rank} "
        f"eps_a1={stats.eps_a1:.4g} eps_iso={stats.eps_iso:.4g} "
        f"({time.perf_counter() - start:.1f} s) -> {args.out}"
    )


def _cmd_simulate(args: argparse.Namespace) -> None:
    from lindyn.simulate import CellSpec, run_cells
    from lindyn.store import read_stats, write_run

    if (args.stats is None) == (args.dataset is None):
        raise ValueError("give exactly one of --stats STATS.zarr or --dataset NAME")
    if args.stats is not None:
        stats = read_stats(args.stats)
    else:
        stats = _load_stats(args.dataset, args.option)
    name = args.label or stats.meta.get("label") or stats.meta.get("name", "")
    spec = CellSpec(args.depth, args.eta, args.delta, args.seed, args.init, args.width)
    (record,) = run_cells(
        stats, [spec], args.max_steps, args.log_density, args.tol, args.max_components
    )
    write_run(record, stats, args.out, dataset=name)
    print(
        f"{name} L={spec.depth} eta={spec.eta:g} delta={spec.delta:g} init={spec.init} "
        f"seed={spec.seed}: {record.status} at step {record.stop_step} "
        f"({record.elapsed_seconds:.2f} s) -> {args.out}"
    )


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from lindyn.aggregate import aggregate

    aggregate(
        run_paths=[Path(p) for p in args.runs],
        stats_path=Path(args.stats),
        out_dir=Path(args.out),
        workers=args.workers,
    )


def _cmd_query(args: argparse.Namespace) -> None:
    from lindyn.query import query_main

    query_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lindyn`` command."""
    parser = argparse.ArgumentParser(
        prog="lindyn", description="Gradient-descent dynamics of deep linear networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="compute a dataset's statistics store")
    p.add_argument("name", help="loader name: commuting, autoencoder, digits, mnist_sample, ...")
    _add_dataset_arguments(p)
    p.add_argument("--label", help="name of this dataset in the grid (default: loader name)")
    p.add_argument("--out", required=True, help="output statistics store (STATS.zarr)")
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser("simulate", help="simulate one run and write its store")
    p.add_argument("--stats", help="statistics store of the dataset (from `lindyn dataset`)")
    p.add_argument("--dataset", help="loader name, to compute the statistics on the fly")
    _add_dataset_arguments(p)
    p.add_argument("--label", help="dataset name recorded in the run store")
    p.add_argument("--depth", type=int, required=True, help="number of layers L >= 1")
    p.add_argument("--eta", type=float, required=True, help="absolute step size > 0")
    p.add_argument("--delta", type=float, required=True, help="init scale: layers at e^-delta")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init (default 0)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default min(d, p))")
    p.add_argument("--init", choices=["aligned", "random"], default="aligned")
    p.add_argument("--max-steps", type=int, default=10_000, help="step budget")
    p.add_argument("--log-density", type=int, default=20, help="logged steps per decade")
    p.add_argument("--tol", type=float, default=1e-8, help="relative excess-loss tolerance")
    p.add_argument("--max-components", type=int, default=64, help="components tracked")
    p.add_argument("--out", required=True, help="output run store (RUN.zarr)")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("aggregate", help="combine one dataset's run stores (Dask)")
    p.add_argument("--stats", required=True, help="the dataset's statistics store")
    p.add_argument("--runs", nargs="+", required=True, help="run stores")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=1, help="Dask workers (default 1)")
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser("query", help="print tables from aggregated results")
    p.add_argument("table", choices=["phase", "bounds", "path", "eps", "runs"])
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument("--where", "-w", action="append", default=[], metavar="AXIS=VALUE")
    p.add_argument("--format", choices=["text", "csv"], default="text")
    p.set_defaults(func=_cmd_query)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lindyn`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"lindyn {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
