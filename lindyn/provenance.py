"""Provenance recorded in every store: version, git commit, time."""

from __future__ import annotations

import datetime as _dt
import functools
import subprocess
from pathlib import Path

from lindyn import __version__

__all__ = ["git_commit", "provenance"]


@functools.cache
def git_commit() -> str:
    """The commit of lindyn's source tree, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def provenance() -> dict[str, str]:
    """Attributes that say what made a store and when."""
    return {
        "lindyn_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
