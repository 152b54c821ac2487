"""CIFAR-10 in its *binary* version (``cifar-10-binary.tar.gz``, ``data_batch_*.bin``).

A batch is a sequence of 3073-byte records: the label (0-9), then 3072 pixel
bytes, the 1024 red values, the 1024 green, the 1024 blue, each plane row by
row (32×32). Rows keep that channel-major layout; pixels are divided by 255.
``path`` is a file, a directory (its ``*.bin`` batches except
``test_batch.bin``: name that file explicitly to use the test split) or a
comma-separated list. The Python version (pickled ``data_batch_1`` files) is
not supported: nothing is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lindyn.datasets.data import Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.files import gather
from lindyn.datasets.options import TARGET, Option, common_options, paths

__all__ = ["CIFAR10_OPTIONS", "read_cifar10", "read_cifar10_batch"]

RECORD = 1 + 3072

CIFAR10_OPTIONS: dict[str, Option] = {
    "path": Option(
        None, paths, "batch file(s) or directory (binary version, *.bin)", required=True
    ),
    "target": TARGET,
    **common_options(),
}

_PICKLE_HINT = (
    "; the CIFAR-10 python version (pickled data_batch_N files) is not supported, "
    "use the binary version (cifar-10-binary.tar.gz, data_batch_N.bin)"
)


def read_cifar10_batch(path: Path) -> np.ndarray:
    """Read one binary CIFAR-10 batch.

    Parameters
    ----------
    path : Path
        The batch file.

    Returns
    -------
    (N, 3073) uint8 array
        Label byte then pixels, one record a row.

    Raises
    ------
    DatasetError
        Naming the file, if it is a pickle, is not a whole number of records,
        or holds a label outside 0..9.
    """
    try:
        content = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DatasetError(f"{path}: cannot read: {err}") from None
    if content.size and content[0] == 0x80:  # pickle protocol >= 2 opcode; no label is 128
        raise DatasetError(f"{path}: is a Python pickle, not a binary batch" + _PICKLE_HINT)
    if content.size == 0 or content.size % RECORD:
        raise DatasetError(
            f"{path}: {content.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 "
            "records (1 label byte + 3072 pixel bytes); truncated or not a CIFAR-10 batch"
        )
    records = content.reshape(-1, RECORD)
    if records[:, 0].max() > 9:
        raise DatasetError(f"{path}: label byte {records[:, 0].max()} outside 0..9")
    return records


def read_cifar10(opts: Mapping[str, Any]) -> Raw:
    """CIFAR-10 binary batches (32×32×3 images, 10 classes).

    Parameters
    ----------
    opts : mapping
        Resolved options of ``CIFAR10_OPTIONS``.

    Returns
    -------
    Raw
    """
    files = gather(
        "path", opts["path"], suffix=".bin", held_out="test_batch.bin", hint=_PICKLE_HINT
    )
    records = np.concatenate([read_cifar10_batch(file) for file in files])
    onehot = opts["target"] == "onehot"
    return Raw(
        X=records[:, 1:],
        labels=records[:, 0] if onehot else None,
        classes=10,
        pixel_max=255.0,
        source=[str(file) for file in files],
    )
