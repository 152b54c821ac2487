"""Finding and opening user data files, turning every failure into `DatasetError`.

A multi-file ``path`` option is a file, a directory or a comma-separated list
of both. A directory stands for its files with the format's suffix, in
natural order (``batch_2`` before ``batch_10``), except the held-out split
(e.g. CIFAR's ``test_batch.bin``), which is read only when named explicitly.
Nothing is ever unpickled: ``.npz`` archives are opened with
``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import re
import tokenize
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lindyn.datasets.errors import DatasetError

__all__ = ["existing_file", "gather", "load_arrays", "read_bytes"]

_GZIP_MAGIC = b"\x1f\x8b"

# What numpy lets escape when it parses a damaged .npy header as a Python literal.
_HEADER_ERRORS = (SyntaxError, tokenize.TokenError)


def existing_file(option: str, path: str) -> Path:
    """The file an option names.

    Parameters
    ----------
    option : str
        The option's name, for the error message.
    path : str
        The path given.

    Returns
    -------
    Path
        Absolute.

    Raises
    ------
    DatasetError
        If the path is not an existing file.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        state = "is a directory, not a file" if file.is_dir() else "does not exist"
        raise DatasetError(f"option {option!r}: {path} {state}")
    return file.resolve()


def _natural(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def gather(
    option: str, paths: Iterable[str], *, suffix: str, held_out: str, hint: str = ""
) -> list[Path]:
    """The files a multi-file path option stands for.

    Parameters
    ----------
    option : str
        The option's name, for error messages.
    paths : iterable of str
        Files and directories.
    suffix : str
        The format's file suffix, e.g. ``".bin"``.
    held_out : str
        File name skipped when expanding a directory.
    hint : str
        Added to the message when a directory holds no such file.

    Returns
    -------
    list of Path
        Absolute paths.

    Raises
    ------
    DatasetError
        If a path does not exist or a directory holds no file of the format.
    """
    files: list[Path] = []
    for entry in paths:
        where = Path(entry).expanduser()
        if not where.is_dir():
            files.append(existing_file(option, entry))
            continue
        found = sorted(
            (
                f
                for f in where.iterdir()
                if f.suffix == suffix and f.name != held_out and f.is_file()
            ),
            key=_natural,
        )
        if not found:
            raise DatasetError(
                f"option {option!r}: directory {entry} has no {suffix} file"
                + (f" other than {held_out}" if (where / held_out).is_file() else "")
                + hint
            )
        files.extend(f.resolve() for f in found)
    return files


def read_bytes(path: Path) -> bytes:
    """A file's content, gunzipped if it is gzip-compressed (detected by its magic).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    bytes

    Raises
    ------
    DatasetError
        If the file cannot be read or its gzip stream is corrupt or truncated.
    """
    try:
        content = path.read_bytes()
        return gzip.decompress(content) if content[:2] == _GZIP_MAGIC else content
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path}: cannot read: {err}") from None


def load_arrays(path: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` archive without ever unpickling.

    Parameters
    ----------
    path : Path
        The archive.
    names : iterable of str
        Arrays required.

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    DatasetError
        If the file is not an ``.npz`` archive, an array is missing, or an
        array cannot be read (corrupt, or an object array that needs pickle).
    """
    names = tuple(names)
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not an .npz (zip) archive")
    try:
        archive = np.load(path, allow_pickle=False)
    # _HEADER_ERRORS: a .npy file with a zip inside, whose damaged header numpy parses.
    except (*_HEADER_ERRORS, OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot open as .npz: {e}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a zip inside a .npy file
        raise DatasetError(f"{path}: not an .npz archive (it starts like a single .npy array)")
    with archive:
        missing = [name for name in names if name not in archive.files]
        if missing:
            raise DatasetError(
                f"{path}: missing array(s) {', '.join(map(repr, missing))}; "
                f"it holds {', '.join(map(repr, archive.files)) or 'none'}"
            )
        arrays = {}
        for name in names:
            try:
                arrays[name] = archive[name]
            # RuntimeError: zipfile's unsupported compression (NotImplementedError) and
            # encryption; MemoryError: a damaged .npy header announcing a huge shape;
            # _HEADER_ERRORS: a damaged header, which numpy parses as a Python literal.
            except (
                *_HEADER_ERRORS,
                OSError,
                ValueError,
                EOFError,
                RuntimeError,
                MemoryError,
                zipfile.BadZipFile,
                zlib.error,
            ) as err:
                raise DatasetError(
                    f"{path}: array {name!r} cannot be read ({err}); object arrays would need "
                    "pickle, which is never used: store numeric arrays"
                ) from None
            if not isinstance(arrays[name], np.ndarray):  # numpy returns raw bytes then
                raise DatasetError(f"{path}: member {name!r} is not a .npy array (damaged?)")
        return arrays
