"""The one exception every dataset problem raises."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A bad loader name, option value or data file.

    The message names the offending option or file (and, for names and
    options, lists what is allowed), so that a command-line user can fix it.
    """
