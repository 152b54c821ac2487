"""What every Python job of the workflow (``workflow/scripts/``) does around its work.

Snakemake runs a ``script:`` job in a process of its own and prints a failing job's
traceback to its own output only; :func:`job_log` puts it in the job's log file, where
``--show-failed-logs``, a cluster's log directory and a later reader look. Snakemake is
not imported: the scripts hand over their ``snakemake.log``, ``input`` and ``output``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["LOG_FORMAT", "job_log", "results_directory"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def job_log(path: str | os.PathLike, name: str) -> Iterator[logging.Logger]:
    """Log a job, its warnings and its failure, if any, to its log file.

    Parameters
    ----------
    path : path-like
        The job's log file (``snakemake.log[0]``); replaces any logging set up before.
    name : str
        Name of the logger given to the job.

    Yields
    ------
    logging.Logger
        The job's logger.

    Raises
    ------
    Exception
        Whatever the job raises, re-raised after its traceback is logged.
    """
    logging.basicConfig(filename=path, level=logging.INFO, format=LOG_FORMAT, force=True)
    logging.captureWarnings(True)
    log = logging.getLogger(name)
    try:
        yield log
    except Exception:
        log.exception("%s failed", name)
        raise


def results_directory(path: str | os.PathLike, layout: Iterable[str | os.PathLike]) -> Path:
    """The results directory that a file a job declares lies in, by lindyn's layout.

    For the functions that take a results directory rather than the files in it
    (:func:`lindyn.aggregate.aggregate`, :func:`lindyn.report.make_figure`,
    :func:`lindyn.report.markdown.build_report`). Taken from the job's file as
    Snakemake resolved it, so that it follows the files wherever Snakemake puts them
    (e.g. a storage provider's local copies).

    Parameters
    ----------
    path : path-like
        A file of the job (``snakemake.input``, ``snakemake.output``).
    layout : iterable of path-like
        The files lindyn puts under a results directory ``"."`` (:mod:`lindyn.paths`,
        :func:`lindyn.report.report_targets`); ``path`` must end with one of them.

    Returns
    -------
    Path
        ``path`` less the part of it that the layout gives.

    Raises
    ------
    ValueError
        If ``path`` ends with none of the layout's files.
    """
    path = Path(path)
    for relative in map(Path, layout):
        depth = len(relative.parts)
        if path.parts[-depth:] == relative.parts:
            return path.parents[depth - 1]
    raise ValueError(f"{path} is not where lindyn's layout puts any of its files")
