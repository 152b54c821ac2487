"""lindyn's performance benchmark: one command, one markdown table, every row a ratio.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py             # full run, writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --quick     # smoke run (about a minute), prints only
    .venv/bin/python benchmarks/run.py --only a,c  # some sections (a, b, c, d)

Flags: ``--quick`` (fewer repeats, smaller sweeps, shorter timings; writes no
file unless ``--output`` is given), ``--repeats N`` (timing rounds a row, default
9, quick 3), ``--threads N`` (threads for numba, BLAS and torch; default all
cores), ``--only`` (sections), ``--output PATH``.

Sections:

a. The eigenbasis fast path against the full-data numpy loop
   (:func:`lindyn.gd.naive_gd`): MNIST sample, depth 2, r = 10, per step, with
   the products after a few steps compared (identical iterates: ≤ 1e-10).
b. Against peers: lindyn, the full-data numpy loop, and the full-batch PyTorch
   loop a researcher would write (``nn.Linear(bias=False)`` layers, MSE loss
   scaled to ½‖·‖²/n, ``torch.optim.SGD``, CPU, float64), on the MNIST sample and
   digits, depth 2 and 4, width 10 and 64. Rows without torch are skipped.
c. Against the machine: the kernel's flop rate over a sweep (``6·d·r·p`` flops
   a depth-2 step and run) as a fraction of ``numpy.matmul``'s on 2000×2000
   float64 matrices, with all threads and with one (wall clock; and CPU time,
   which other jobs on the machine do not inflate); and the compiled kernel
   against lindyn's numpy engine :class:`lindyn.engines.NumpyEngine` on the same sweep.
d. Scaling, in CPU time of one thread (the work, whatever else runs): time
   against the number of runs, against d, and against n.

Method: a row's contenders are timed in rounds; a round times each contender
once, back to back, in a rotating order; a contender's time is the median over
rounds and a row's ratio the median of the per-round ratios, so that the phases
of a busy machine hit both sides of a ratio alike. A timing lasts about 0.25 s
(0.1 s quick): after a warm-up call (which also compiles the numba kernel or
loads it from its cache) the number of steps doubles until a call lasts half
that, so that fixed costs of a call are amortised.

Pipeline timings (DAG build of a 10 000-cell grid, aggregation throughput) are
not measured yet: add them as a further section function in ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import threadpoolctl

from lindyn.datasets import load_dataset
from lindyn.engines import NumpyEngine
from lindyn.fastgd import Sweep
from lindyn.gd import EigenProblem, naive_gd
from lindyn.init import init_layers
from lindyn.stats import Stats, dataset_stats

HERE = Path(__file__).resolve().parent
TORCH_MISSING = (
    "skipped: torch is not installed (optional extra `bench`: "
    "`.venv/bin/pip install torch==2.13.0`)"
)
IDENTICAL = 1e-10  # relative difference of products that counts as identical iterates
SWEEP_ETAS = (0.01, 0.02, 0.05, 0.1)
SWEEP_DELTAS = (1.0, 2.0, 3.0, 4.0)
MAX_STEPS = 50_000  # steps of one timing


@dataclass
class Options:
    """Settings of one benchmark run."""

    repeats: int
    budget: float  # seconds a timing
    sweep: int  # runs of a sweep
    check_steps: int  # steps before iterates are compared
    threads: int


@dataclass
class Row:
    """One line of the results table."""

    key: str
    what: str
    lindyn: str
    reference: str
    ratio: float | None
    target: str = ""
    status: str = "info"
    check: str = ""


@dataclass
class Data:
    """A dataset with its statistics and working-basis problem."""

    name: str
    X: np.ndarray
    Y: np.ndarray
    stats: Stats
    problem: EigenProblem


# ---------------------------------------------------------------------------
# Timing


def contender(
    advance: Callable[[int], object],
    per_step: int,
    budget: float,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[], float]:
    """A timer of ``advance(steps)``: seconds per step and per ``per_step`` units.

    After a warm-up call, ``steps`` doubles until a call lasts half the budget
    and is then scaled to the budget, so that fixed costs of a call (waking
    threads on a busy machine can take milliseconds, an engine allocates the
    steps' observables) are amortised.
    """
    advance(1)

    def measure(steps: int) -> float:
        start = clock()
        advance(steps)
        return clock() - start

    steps, elapsed = 1, measure(1)
    while elapsed < budget / 2 and steps < MAX_STEPS:
        steps *= 2
        elapsed = measure(steps)
    steps = int(np.clip(round(steps * budget / max(elapsed, 1e-9)), 1, MAX_STEPS))
    return lambda: measure(steps) / (steps * per_step)


def rounds(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, np.ndarray]:
    """Time every contender once a round, ``repeats`` rounds, in a rotating order."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(contenders[name]())
    return {name: np.array(values) for name, values in times.items()}


def ratio(times: dict[str, np.ndarray], slow: str, fast: str) -> float:
    """Median over rounds of ``time[slow] / time[fast]``."""
    return float(np.median(times[slow] / times[fast]))


def seconds(value: float) -> str:
    """A duration with a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def times_faster(value: float) -> str:
    return f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×"


def at_least(value: float, target: float) -> str:
    return "met" if value >= target else "missed"


# ---------------------------------------------------------------------------
# The contenders


def product(layers) -> np.ndarray:
    W = layers[0]
    for layer in layers[1:]:
        W = W @ layer
    return W


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def sweep_runs(data: Data, depth: int, width: int, count: int):
    """``count`` random-init runs over a grid of step sizes, scales and seeds."""
    runs, etas = [], []
    for i in range(count):
        eta = SWEEP_ETAS[i % len(SWEEP_ETAS)]
        delta = SWEEP_DELTAS[(i // len(SWEEP_ETAS)) % len(SWEEP_DELTAS)]
        runs.append(init_layers(data.stats, depth, width, delta, "random", seed=i))
        etas.append(eta)
    return runs, etas


def fast_advance(data: Data, runs, etas) -> Callable[[int], object]:
    sweep = Sweep(data.problem, runs, etas)
    return sweep.advance


def numpy_engine(data: Data, runs, etas) -> NumpyEngine:
    """lindyn's numpy engine: every run advanced, loss and u_i recorded every step."""
    return NumpyEngine(data.problem, runs, etas)


def naive_advance(data: Data, layers0, eta: float) -> Callable[[int], object]:
    return lambda steps: naive_gd(data.X, data.Y, layers0, eta, steps)


def torch_model(data: Data, layers0, eta: float):
    """The full-batch PyTorch loop; returns ``(advance, layers)`` callables."""
    import torch

    X = torch.from_numpy(data.X)
    Y = torch.from_numpy(data.Y)
    linears = [torch.nn.Linear(*layer.shape, bias=False, dtype=torch.float64) for layer in layers0]
    with torch.no_grad():
        for linear, layer in zip(linears, layers0, strict=True):
            linear.weight.copy_(torch.from_numpy(layer.T))
    model = torch.nn.Sequential(*linears)
    optimiser = torch.optim.SGD(model.parameters(), lr=eta)
    # MSELoss averages over n·p entries: (p/2)·MSE = ½‖Y − XW‖²/n.
    scale = data.Y.shape[1] / 2

    def advance(steps: int) -> None:
        for _ in range(steps):
            optimiser.zero_grad()
            loss = scale * torch.nn.functional.mse_loss(model(X), Y)
            loss.backward()
            optimiser.step()

    def layers() -> list[np.ndarray]:
        return [linear.weight.detach().numpy().T.copy() for linear in linears]

    return advance, layers


def have_torch(threads: int) -> bool:
    try:
        import torch
    except ImportError:
        return False
    torch.set_num_threads(threads)
    return True


# ---------------------------------------------------------------------------
# Sections


def section_a(datasets: dict[str, Data], opts: Options) -> list[Row]:
    """The eigenbasis fast path against the full-data numpy loop."""
    data = datasets["mnist_sample"]
    runs, etas = sweep_runs(data, 2, 10, opts.sweep)
    layers0, eta = runs[0], etas[0]
    N = opts.check_steps
    naive = product(naive_gd(data.X, data.Y, layers0, eta, N)[-1])
    numpy_single = numpy_engine(data, [layers0], [eta])
    numpy_single.advance(N)
    checks = {"numpy": data.problem.Q @ numpy_single.products()[0]}
    single = Sweep(data.problem, [layers0], [eta])
    single.advance(N)
    checks["fast1"] = product(single.layers()[0])
    in_sweep = Sweep(data.problem, runs, etas)
    in_sweep.advance(N)
    checks["sweep"] = product(in_sweep.layers()[0])
    diffs = {name: relative(W, naive) for name, W in checks.items()}

    times = rounds(
        {
            "naive": contender(naive_advance(data, layers0, eta), 1, opts.budget),
            "numpy": contender(numpy_engine(data, [layers0], [eta]).advance, 1, opts.budget),
            "fast1": contender(fast_advance(data, [layers0], [eta]), 1, opts.budget),
            "sweep": contender(fast_advance(data, runs, etas), len(runs), opts.budget),
        },
        opts.repeats,
    )
    what = "MNIST sample (n 5000, d 784, p 10), depth 2, r 10, random init; per step: "
    labels = {
        "numpy": "numpy eigenbasis engine `NumpyEngine`, 1 run",
        "fast1": "compiled kernel `fastgd`, 1 run",
        "sweep": f"compiled kernel `fastgd`, per run of a {len(runs)}-run sweep",
    }
    rows = []
    for i, (name, label) in enumerate(labels.items(), start=1):
        value = ratio(times, "naive", name)
        ok = diffs[name] <= IDENTICAL
        rows.append(
            Row(
                key=f"a{i}",
                what=what + label + " vs full-data numpy loop `naive_gd`",
                lindyn=seconds(np.median(times[name])),
                reference=seconds(np.median(times["naive"])),
                ratio=value,
                target="≥ 100×",
                status=at_least(value, 100) if ok else "missed (iterates differ)",
                check=f"products after {N} steps: rel. diff {diffs[name]:.1e} (≤ 1e-10)",
            )
        )
    return rows


def section_b(datasets: dict[str, Data], opts: Options) -> list[Row]:
    """lindyn against the full-data numpy loop and the PyTorch loop."""
    torch_ok = have_torch(opts.threads)
    rows = []
    index = 0
    for name, data in datasets.items():
        n, d = data.X.shape
        p = data.Y.shape[1]
        for depth in (2, 4):
            for width in (10, 64):
                runs, etas = sweep_runs(data, depth, width, opts.sweep)
                layers0, eta = runs[0], etas[0]
                N = opts.check_steps
                naive = product(naive_gd(data.X, data.Y, layers0, eta, N)[-1])
                sweep = Sweep(data.problem, runs, etas)
                sweep.advance(N)
                checks = [f"lindyn {relative(product(sweep.layers()[0]), naive):.1e}"]
                contenders = {
                    "sweep": contender(sweep.advance, len(runs), opts.budget),
                    "fast1": contender(fast_advance(data, [layers0], [eta]), 1, opts.budget),
                    "naive": contender(naive_advance(data, layers0, eta), 1, opts.budget),
                }
                if torch_ok:
                    advance, layers = torch_model(data, layers0, eta)
                    advance(N)
                    checks.append(f"torch {relative(product(layers()), naive):.1e}")
                    contenders["torch"] = contender(
                        torch_model(data, layers0, eta)[0], 1, opts.budget
                    )
                times = rounds(contenders, opts.repeats)
                check = f"products after {N} steps vs `naive_gd`: " + ", ".join(checks)
                what = f"{name} (n {n}, d {d}, p {p}), depth {depth}, r {width}: "
                sweep_label = f"lindyn per run of a {len(runs)}-run sweep"
                is_target = name == "mnist_sample" and depth == 2 and width == 10
                pairs = [
                    ("sweep", "torch", f"{sweep_label} vs PyTorch loop", 1000),
                    ("fast1", "torch", "lindyn 1 run vs PyTorch loop", None),
                    ("sweep", "naive", f"{sweep_label} vs full-data numpy loop", None),
                ]
                for fast, slow, label, target in pairs:
                    index += 1
                    row = Row(
                        key=f"b{index}",
                        what=what + label + ", per step",
                        lindyn=seconds(np.median(times[fast])),
                        reference="",
                        ratio=None,
                        check=check,
                    )
                    if is_target and target:
                        row.target = f"≥ {target:,}×"
                    if slow not in times:
                        row.status = TORCH_MISSING
                    else:
                        row.reference = seconds(np.median(times[slow]))
                        row.ratio = ratio(times, slow, fast)
                        if row.target:
                            row.status = at_least(row.ratio, target)
                    rows.append(row)
    return rows


def section_c(datasets: dict[str, Data], opts: Options) -> list[Row]:
    """The kernel's flop rate against numpy.matmul, and against lindyn's numpy engine."""
    data = datasets["mnist_sample"]
    d, p = data.problem.S.shape
    r = 10
    runs, etas = sweep_runs(data, 2, r, opts.sweep)
    flops = 6 * d * r * p
    size = 2000
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((size, size)), rng.standard_normal((size, size))

    def matmuls(count: int) -> None:
        for _ in range(count):
            np.matmul(A, B)

    rows = []
    settings = (
        ("c1", opts.threads, time.perf_counter, "wall clock"),
        ("c2", 1, time.perf_counter, "wall clock"),
        ("c3", 1, time.process_time, "CPU time, insensitive to other jobs"),
    )
    for key, threads, clock, timing in settings:
        numba.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(threads):
            sweep = fast_advance(data, runs, etas)
            times = rounds(
                {
                    "matmul": contender(matmuls, 1, opts.budget, clock),
                    "sweep": contender(sweep, len(runs), opts.budget, clock),
                },
                opts.repeats,
            )
        numba.set_num_threads(opts.threads)
        machine = 2 * size**3 / times["matmul"]
        achieved = flops / times["sweep"]
        value = float(np.median(achieved / machine))
        rows.append(
            Row(
                key=key,
                what=(
                    f"flop rate of a {len(runs)}-run sweep (MNIST sample, depth 2, r {r}, "
                    f"6·d·r·p = {flops:,} flops a step and run) / numpy.matmul "
                    f"{size}×{size} float64, {threads} thread{'s' if threads > 1 else ''}, "
                    f"{timing}"
                ),
                lindyn=f"{np.median(achieved) / 1e9:.1f} GF/s",
                reference=f"{np.median(machine) / 1e9:.1f} GF/s",
                ratio=value,
                target="≥ 0.40" if key == "c1" else "",
                status=at_least(value, 0.4) if key == "c1" else "info",
                check="loss and u_i recorded every step (not counted in the flops)",
            )
        )
    times = rounds(
        {
            "numpy": contender(numpy_engine(data, runs, etas).advance, len(runs), opts.budget),
            "sweep": contender(fast_advance(data, runs, etas), len(runs), opts.budget),
        },
        opts.repeats,
    )
    rows.append(
        Row(
            key="c4",
            what=(
                f"compiled kernel vs numpy engine `NumpyEngine` on the same {len(runs)}-run sweep "
                f"(MNIST sample, depth 2, r {r}), per step and run"
            ),
            lindyn=seconds(np.median(times["sweep"])),
            reference=seconds(np.median(times["numpy"])),
            ratio=ratio(times, "numpy", "sweep"),
            check="both record loss and u_i every step",
        )
    )
    return rows


def synthetic(d: int, n: int, p: int = 10, seed: int = 0) -> Data:
    """Gaussian inputs with a decaying spectrum and noisy linear targets."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.linspace(1.0, 0.1, d)
    Y = X @ rng.standard_normal((d, p)) / np.sqrt(d) + 0.1 * rng.standard_normal((n, p))
    stats = dataset_stats(X, Y)
    return Data(f"synthetic d {d} n {n}", X, Y, stats, EigenProblem.from_stats(stats))


def scaling_rows(
    problems: dict[str, tuple[Data, int]], opts: Options, per_run: bool
) -> dict[str, np.ndarray]:
    """CPU time (1 thread) of a step of a depth-2, width-10 sweep on each problem.

    ``problems`` maps a label to a dataset and a number of runs; times are per
    step, or per step and run if ``per_run``.
    """
    numba.set_num_threads(1)
    contenders = {}
    for label, (data, count) in problems.items():
        runs, etas = sweep_runs(data, 2, 10, count)
        per_step = len(runs) if per_run else 1
        advance = fast_advance(data, runs, etas)
        contenders[label] = contender(advance, per_step, opts.budget, time.process_time)
    times = rounds(contenders, opts.repeats)
    numba.set_num_threads(opts.threads)
    return times


def scaling_row(key: str, what: str, times, small: str, large: str, expected: float) -> Row:
    value = ratio(times, large, small)
    return Row(
        key=key,
        what=what + " (CPU time, 1 thread)",
        lindyn=seconds(np.median(times[large])),
        reference=seconds(np.median(times[small])),
        ratio=value,
        target=f"≈ {expected:g} (±25%)",
        status="met" if abs(value / expected - 1) <= 0.25 else "missed",
    )


def section_d(datasets: dict[str, Data], opts: Options) -> list[Row]:
    """Time against the number of runs, against d and against n."""
    data = datasets["mnist_sample"]
    base = max(opts.sweep // 4, 8)
    times = scaling_rows({f"{k}x": (data, k * base) for k in (1, 4, 16)}, opts, per_run=False)
    what = f"MNIST sample, depth 2, r 10: time a step of a sweep, {{}} runs vs {base}"
    rows = [
        scaling_row("d1", what.format(4 * base), times, "1x", "4x", 4),
        scaling_row("d2", what.format(16 * base), times, "1x", "16x", 16),
    ]

    sizes = (200, 400, 800)
    problems = {f"d{size}": (synthetic(size, 2000), opts.sweep) for size in sizes}
    times = scaling_rows(problems, opts, per_run=True)
    for key, size in (("d3", 400), ("d4", 800)):
        what = f"synthetic (n 2000, p 10), depth 2, r 10: time a step and run, d {size} vs d 200"
        rows.append(scaling_row(key, what, times, "d200", f"d{size}", size / sizes[0]))

    counts = (2000, 50_000)
    stats_time = {}
    problems = {}
    for n in counts:
        start = time.perf_counter()
        problems[f"n{n}"] = (synthetic(400, n), opts.sweep)
        stats_time[n] = time.perf_counter() - start
    times = scaling_rows(problems, opts, per_run=True)
    row = scaling_row(
        "d5",
        f"synthetic (d 400, p 10), depth 2, r 10: time a step and run, n {counts[1]:,} vs "
        f"n {counts[0]:,}",
        times,
        f"n{counts[0]}",
        f"n{counts[1]}",
        1,
    )
    row.check = (
        f"statistics step (data generation + `dataset_stats`, once, wall clock): "
        f"{seconds(stats_time[counts[1]])} vs {seconds(stats_time[counts[0]])}"
    )
    rows.append(row)
    return rows


SECTIONS: dict[str, Callable[[dict[str, Data], Options], list[Row]]] = {
    "a": section_a,
    "b": section_b,
    "c": section_c,
    "d": section_d,
}
TITLES = {
    "a": "a. Eigenbasis fast path vs the full-data numpy loop",
    "b": "b. Kernel vs peers (numpy full-data loop, PyTorch full-batch loop)",
    "c": "c. Kernel vs the machine",
    "d": "d. Scaling",
}


# ---------------------------------------------------------------------------
# Report


def table(rows: list[Row]) -> str:
    lines = [
        "| row | measurement | lindyn | reference | ratio | target | status | check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.ratio is None:
            value = "—"
        elif row.key in ("c1", "c2", "c3"):
            value = f"{row.ratio:.2f}"
        elif row.key.startswith("d"):
            value = f"{row.ratio:.2f}"
        else:
            value = times_faster(row.ratio)
        cells = [row.key, row.what, row.lindyn, row.reference or "—", value]
        cells += [row.target or "—", row.status, row.check or "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    cpu = cpu_model()
    blas = [
        f"{info['internal_api']} {info.get('version')} ({info.get('architecture')})"
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    ]
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__} ({', '.join(blas) or 'BLAS unknown'}), "
        f"numba {numba.__version__}, torch {torch_version}"
    )


def report(rows: list[Row], header: dict[str, str], sections: list[str]) -> str:
    parts = ["# lindyn benchmark results", ""]
    parts += [f"- **{key}**: {value}" for key, value in header.items()]
    parts += [
        "",
        "Every row is a ratio measured in this run: the contenders of a row are timed in",
        "alternating rounds, times are medians over rounds and a ratio is the median of the",
        "per-round ratios (`benchmarks/run.py` explains the method). *lindyn* and *reference*",
        "are median times per step (per step and run for sweeps), or flop rates in section c.",
        "Ratios are reference/lindyn (times faster) in sections a–b and c4, achieved/machine",
        "rate in c1–c3, and time(larger)/time(smaller) in section d.",
        "",
    ]
    for key in sections:
        parts += [f"## {TITLES[key]}", "", table([row for row in rows if row.key[0] == key]), ""]
    parts += [
        "## Pipeline",
        "",
        "Measured by `benchmarks/pipeline.py` (DAG build for a 10 000-cell grid,",
        "aggregation throughput, bytes per run); its table is appended below.",
        "",
    ]
    return "\n".join(parts)


def load(names: list[str]) -> dict[str, Data]:
    datasets = {}
    for name in names:
        raw = load_dataset(name, center=False)
        stats = dataset_stats(raw.X, raw.Y)
        datasets[name] = Data(name, raw.X, raw.Y, stats, EigenProblem.from_stats(stats))
    return datasets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--repeats", type=int, help="timing rounds a row (default 9, quick 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads")
    parser.add_argument("--only", default="abcd", help="sections to run, e.g. a,c")
    parser.add_argument("--output", type=Path, help="markdown file to write")
    args = parser.parse_args(argv)
    sections = [key for key in SECTIONS if key in args.only]
    output = args.output or (None if args.quick else HERE / "RESULTS.md")
    opts = Options(
        repeats=args.repeats or (3 if args.quick else 9),
        budget=0.1 if args.quick else 0.25,
        sweep=16 if args.quick else 64,
        check_steps=10 if args.quick else 20,
        threads=args.threads,
    )
    numba.set_num_threads(opts.threads)
    started = time.perf_counter()
    load_before = os.getloadavg()
    with threadpoolctl.threadpool_limits(opts.threads):
        names = ["mnist_sample", "digits"] if "b" in sections else ["mnist_sample"]
        datasets = load(names)
        rows: list[Row] = []
        for key in sections:
            rows += SECTIONS[key](datasets, opts)
            print(
                f"section {key} done after {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
    header = {
        "command": "`" + " ".join(["benchmarks/run.py", *(argv or sys.argv[1:])]) + "`",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": f"{opts.threads} (numba, BLAS, torch)",
        "repeats": f"{opts.repeats} rounds a row, about {opts.budget} s a timing",
        "load average": (
            f"{load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            f"({os.cpu_count()} cores)"
        ),
        "runtime": f"{time.perf_counter() - started:.0f} s",
    }
    text = report(rows, header, sections)
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
