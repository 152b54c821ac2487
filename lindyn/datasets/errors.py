"""The one exception every dataset problem raises, and how messages name the data."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DatasetError", "describe_source"]


class DatasetError(ValueError):
    """A bad loader name, option value or data file.

    The message names the offending option or file (and, for names and
    options, lists what is allowed), so that a command-line user can fix it.
    """


def describe_source(source: str | Sequence[str]) -> str:
    """Where data came from, for the start of a message: a description or the files.

    Parameters
    ----------
    source : str or sequence of str
        ``Raw.source`` (also ``meta["source"]``).

    Returns
    -------
    str
        The description, the files comma-separated, or for more than three
        files the first and the last and how many.
    """
    if isinstance(source, str):
        return source
    if len(source) > 3:
        return f"{source[0]} … {source[-1]} ({len(source)} files)"
    return ", ".join(source)
