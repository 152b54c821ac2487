"""Provenance recorded in every store: version, git commit, time."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import subprocess
from pathlib import Path

from lindyn import __version__

__all__ = ["code_hash", "git_commit", "provenance"]

# Modules whose code determines a run's numbers (not how they are plotted or queried).
RESULT_MODULES = (
    "datasets",
    "engines.py",
    "fastgd.py",
    "gd.py",
    "init.py",
    "stats.py",
    "sweeps.py",
    "theory.py",
)


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


@functools.cache
def code_hash() -> str:
    """Hash of the source of the modules that determine simulation results.

    Unlike the git commit, it changes only when those modules change, so that
    a run is reported stale only when rerunning it could change its numbers.
    """
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in RESULT_MODULES:
        path = package / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.relative_to(package).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def provenance() -> dict[str, str]:
    """Attributes that say what made a store and when."""
    return {
        "lindyn_version": __version__,
        "code_hash": code_hash(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
