"""The pipeline's unit of work: blocks of grid cells, tiled so that reruns stay small.

A dataset's cells are split by initialisation (the aligned init has no seed
axis), hidden width and per-layer scale ratio (:mod:`lindyn.init`), by value, and
then tiled along the grid axes by the *position* of each value in the
configuration's lists: with tile sizes ``n_depth, n_eta, n_delta, n_seed``
(config ``blocks``, default 4 each), block ``L{i}_e{j}_d{k}_s{l}`` holds depths
``i·n_depth … (i+1)·n_depth − 1`` of the list, and so on. A block is one
:func:`lindyn.sweep` call, one Snakemake job and one store.

Why positions: appending a value to an axis leaves every existing tile unchanged
except the last one along that axis, which gains the value. The pipeline then
simulates the new cells plus the cells of that last tile that already existed:
at most ``n_axis`` times the number of new cells (at most 4× with the default
tiles), and exactly the new cells when the last tile was full. Inserting a value
in the middle of a list, or reordering it, shifts every tile after it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lindyn.config import allowed, format_value, ratios, widths
from lindyn.runs import BALANCED

__all__ = ["BLOCK_PATTERN", "Block", "block_path", "plan_blocks", "scheduled_cells"]

# Wildcard constraint of a block's name (see Block.name): a ratio as format_value spells it.
BLOCK_PATTERN = rf"({'|'.join(allowed('grid.init'))})_w\d+(_r[0-9.e+-]+)?_L\d+_e\d+_d\d+(_s\d+)?"


@dataclass(frozen=True)
class Block:
    """One block of a dataset's grid cells.

    Attributes
    ----------
    dataset : str
    init : {"aligned", "random"}
    width : int
    tile : tuple of int
        Tile index along ``depth, eta, delta`` (and ``seed`` for the random init).
    depth, eta, delta : tuple
        The axis values of the block, in configuration order.
    seed : tuple of int
        Seeds (empty for the aligned init).
    ratio : float
        Per-layer scale ratio of the init (1: balanced).
    """

    dataset: str
    init: str
    width: int
    tile: tuple[int, ...]
    depth: tuple[int, ...]
    eta: tuple[float, ...]
    delta: tuple[float, ...]
    seed: tuple[int, ...] = ()
    ratio: float = BALANCED

    @property
    def name(self) -> str:
        """The block's file name stem, e.g. ``random_w10_L0_e1_d0_s0``.

        With a ratio other than 1, e.g. ``aligned_w10_r4.0_L0_e1_d0``. The ratio is
        named only when it is not 1: the blocks of the balanced init keep
        the names they had before the ratio axis existed, and their stores stay valid.
        """
        letters = "Leds"
        parts = [f"{letter}{index}" for letter, index in zip(letters, self.tile, strict=False)]
        ratio = "" if self.balanced else f"r{format_value(self.ratio)}_"
        return f"{self.init}_w{self.width}_{ratio}" + "_".join(parts)

    @property
    def balanced(self) -> bool:
        """Whether the block's init is balanced (ratio 1)."""
        return self.ratio == BALANCED

    @property
    def cells(self) -> int:
        """Number of grid cells (runs) in the block."""
        return len(self.depth) * len(self.eta) * len(self.delta) * max(len(self.seed), 1)

    def sweep_arguments(self) -> str:
        """The block's cells as arguments of ``lindyn sweep``."""
        args = [
            f"--init {self.init}",
            f"--width {self.width}",
            "--depth " + " ".join(map(str, self.depth)),
            "--eta " + " ".join(format_value(float(v)) for v in self.eta),
            "--delta " + " ".join(format_value(float(v)) for v in self.delta),
        ]
        if self.seed:
            args.append("--seed " + " ".join(map(str, self.seed)))
        if not self.balanced:  # unchanged for ratio 1: no rerun of the balanced blocks
            args.append(f"--ratio {format_value(self.ratio)}")
        return " ".join(args)

    def expected(self) -> dict[str, Any]:
        """What the block's store must hold (see :func:`lindyn.store.open_block`)."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "init": self.init,
            "width": self.width,
            "depth": list(self.depth),
            "eta": [float(v) for v in self.eta],
            "delta": [float(v) for v in self.delta],
        }
        if self.seed:
            out["seed"] = list(self.seed)
        if not self.balanced:  # a balanced block made before the ratio axis records none
            out["ratio"] = self.ratio
        return out


def _tiles(values: Sequence[Any], size: int) -> list[tuple[Any, ...]]:
    return [tuple(values[i : i + size]) for i in range(0, len(values), size)]


def plan_blocks(config: Mapping[str, Any], dataset: str) -> list[Block]:
    """Every block of one dataset's grid, in a stable order.

    Parameters
    ----------
    config : mapping
        The validated pipeline configuration (:func:`lindyn.config.validated`: its
        defaults, the tile sizes ``blocks`` among them, filled in).
    dataset : str
        A key of ``config["datasets"]``.
    """
    grid = config["grid"]
    tiles = config["blocks"]
    depth = _tiles([int(v) for v in grid["depth"]], tiles["depth"])
    eta = _tiles([float(v) for v in grid["eta"]], tiles["eta"])
    delta = _tiles([float(v) for v in grid["delta"]], tiles["delta"])
    seed = _tiles([int(v) for v in grid["seed"]], tiles["seed"])
    blocks = []
    for width, ratio, init in itertools.product(
        widths(config, dataset), ratios(config, dataset), grid["init"]
    ):
        for (i, depths), (j, etas), (k, deltas) in itertools.product(
            enumerate(depth), enumerate(eta), enumerate(delta)
        ):
            if init == "aligned":
                tile = (i, j, k)
                blocks.append(Block(dataset, init, width, tile, depths, etas, deltas, (), ratio))
                continue
            for m, seeds in enumerate(seed):
                tile = (i, j, k, m)
                blocks.append(Block(dataset, init, width, tile, depths, etas, deltas, seeds, ratio))
    return blocks


def block_path(block: Block, results: str = "results") -> str:
    """Where a block's store lives."""
    return f"{results}/blocks/{block.dataset}/{block.name}.zarr.zip"


_SCHEDULED = re.compile(
    r"^rule simulate:\n(?:    .*\n)*?    wildcards: dataset=(?P<dataset>\w+), block=\S+\n"
    r"(?:    .*\n)*?    resources: .*?\bcells=(?P<cells>\d+)",
    re.MULTILINE,
)


def scheduled_cells(dry_run: str) -> dict[str, tuple[int, int]]:
    """Blocks and cells the simulate jobs of a Snakemake dry run would simulate.

    Parameters
    ----------
    dry_run : str
        The output of ``snakemake --dry-run`` (each job's ``resources`` line
        carries its number of cells).

    Returns
    -------
    dict
        Dataset -> (blocks, cells) scheduled.
    """
    out: dict[str, tuple[int, int]] = {}
    for match in _SCHEDULED.finditer(dry_run):
        blocks, cells = out.get(match["dataset"], (0, 0))
        out[match["dataset"]] = (blocks + 1, cells + int(match["cells"]))
    return out
