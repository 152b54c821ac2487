"""Run the pipeline without ever breaking a live run's lock (``lindyn run``).

Snakemake's own lock (``.snakemake/locks/``) records which files a run uses, not who
holds it, so a run killed outright leaves it behind and ``snakemake --unlock`` cannot
tell a stale lock from a live one: unlocking while another run is live lets two runs
write and delete the same files. ``lindyn run`` therefore

1. holds an exclusive ``flock`` on ``.snakemake/lindyn-run.lock`` for its whole duration
   (the kernel releases it when the process dies, however it dies), recording there
   who holds it, so that a second ``lindyn run`` refuses, naming the first;
2. refuses while a Snakemake started by other means is running in the directory
   (found through ``/proc``);
3. unlocks Snakemake's lock only when both show it is stale;
4. runs ``snakemake --rerun-incomplete``, then the report.

The process scan sees this host only: on a directory shared between hosts, the flock
(where the file system supports it) still excludes a second ``lindyn run``, but a
Snakemake started by hand on another host is not seen.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = [
    "LOCK_FILE",
    "RunBusyError",
    "SnakemakeProcess",
    "is_snakemake",
    "run_lock",
    "run_pipeline",
    "snakemake_locks",
    "snakemake_processes",
]

LOCK_FILE = Path(".snakemake") / "lindyn-run.lock"
PROC = Path("/proc")


class RunBusyError(RuntimeError):
    """The pipeline in this directory is being run by another process."""


@dataclass(frozen=True)
class SnakemakeProcess:
    """A live Snakemake process.

    Attributes
    ----------
    pid : int
        Its process id.
    command : str
        Its command line.
    cwd : Path or None
        Its working directory, None if it cannot be read (another user's process).
    uid : int
        The user it runs as.
    """

    pid: int
    command: str
    cwd: Path | None
    uid: int


def is_snakemake(argv: Sequence[str]) -> bool:
    """Whether a command line runs Snakemake.

    Recognises ``snakemake …``, an interpreter running the console script
    (``python /venv/bin/snakemake …``, which is how the kernel records a script with
    a shebang) and ``python -m snakemake …``.
    """
    if not argv:
        return False
    if Path(argv[0]).name == "snakemake":
        return True
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m":
            return list(argv[i + 1 : i + 2]) == ["snakemake"]
        if not arg.startswith("-"):
            return Path(arg).name == "snakemake"
    return False


def snakemake_processes(
    directory: Path, lock_owners: frozenset[int] = frozenset()
) -> list[SnakemakeProcess]:
    """The live Snakemake processes that may be running the pipeline in ``directory``.

    Those whose working directory is ``directory`` (Snakemake changes into its
    ``--directory``), and those whose working directory cannot be read (another
    user's) if that user owns a lock file: a Snakemake creates its lock files itself,
    so only their owner's processes can hold them. This process is left out;
    ``lindyn run`` scans before it starts a Snakemake of its own.

    Parameters
    ----------
    directory : Path
        The pipeline's working directory.
    lock_owners : frozenset of int
        Owners of Snakemake's lock files in ``directory``.

    Raises
    ------
    FileNotFoundError
        Without ``/proc`` (not Linux), where processes cannot be checked.
    """
    directory = directory.resolve()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().decode(errors="replace")
            uid = entry.stat().st_uid
        except OSError:  # exited meanwhile
            continue
        argv = raw.rstrip("\0").split("\0")
        if not is_snakemake(argv):
            continue
        try:
            cwd: Path | None = Path(os.readlink(entry / "cwd"))
        except PermissionError:
            cwd = None
        except OSError:
            continue
        if cwd == directory or (cwd is None and uid in lock_owners):
            found.append(SnakemakeProcess(int(entry.name), " ".join(argv), cwd, uid))
    return found


def snakemake_locks(directory: Path) -> list[Path]:
    """Snakemake's lock files in ``directory`` (empty when it is not locked)."""
    locks = directory / ".snakemake" / "locks"
    return sorted(p for p in locks.iterdir() if p.is_file()) if locks.is_dir() else []


def _holder(fd: int, path: Path) -> tuple[str, str]:
    """Who holds the run lock ``path`` open at ``fd``, and how to stop it."""
    for _ in range(20):  # the holder writes just after locking: give it a moment
        text = os.pread(fd, 4096, 0).decode(errors="replace")
        if text:
            break
        time.sleep(0.05)
    try:
        info = json.loads(text)
        who = f"pid {info['pid']} on {info['host']} since {info['since']} (`{info['command']}`)"
        return who, f"stop it with `kill {info['pid']}` on {info['host']}"
    except (ValueError, KeyError, TypeError):
        return "a process that recorded nothing", f"find it with `fuser -v {path}`"


@contextlib.contextmanager
def run_lock(directory: Path, command: str, wait: bool = False) -> Iterator[None]:
    """Hold the run lock of the pipeline in ``directory``.

    Parameters
    ----------
    directory : Path
        The pipeline's working directory; the lock is ``LOCK_FILE`` in it.
    command : str
        The command recorded in the lock, with this host, process id and time.
    wait : bool
        Wait for the holder to release the lock instead of refusing.

    Raises
    ------
    RunBusyError
        If another process holds the lock (and ``wait`` is false).
    """
    path = directory / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # Never truncated before it is locked (that would erase the holder's record) and
    # never deleted (a waiter would lock the deleted file while a third process locks
    # a new one).
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, stop = _holder(fd, path)
            if not wait:
                raise RunBusyError(
                    f"the pipeline in {directory} is already running: {holder}. "
                    f"Wait for it to finish (or use `lindyn run --wait`), or {stop}; "
                    "do not `snakemake --unlock` meanwhile"
                ) from None
            _say(f"waiting for {holder} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def _say(message: str) -> None:
    print(f"lindyn run: {message}", file=sys.stderr, flush=True)


def _snakemake_executable() -> str:
    """Snakemake of this Python's environment, else the one on the PATH."""
    beside = Path(sys.executable).parent / "snakemake"
    found = str(beside) if beside.is_file() else shutil.which("snakemake")
    if found is None:
        raise RuntimeError("snakemake not found: install lindyn[workflow]")
    return found


def _call(argv: Sequence[str], directory: Path) -> int:
    """Run ``argv`` in ``directory`` to its end, whatever signals arrive; its exit status.

    Raises
    ------
    KeyboardInterrupt
        After ``argv`` has ended, if Ctrl-C arrived meanwhile: the run was stopped,
        even if Snakemake happened to finish its last job (nothing more is started).
    """
    proc = subprocess.Popen(argv, cwd=directory)
    # `kill` of lindyn reaches Snakemake, which finishes its running jobs and stops.
    previous = signal.signal(signal.SIGTERM, lambda signum, _: proc.send_signal(signum))
    interrupted = False
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C reached Snakemake too (same process group): the lock is held
                # until it has cancelled its jobs and exited.
                interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    if interrupted:
        raise KeyboardInterrupt
    return 128 - code if code < 0 else code


def _check_no_live_snakemake(directory: Path, wait: bool) -> None:
    """Refuse, or with ``wait`` wait, while a Snakemake may be running in ``directory``."""
    announced = False
    while True:
        locks = snakemake_locks(directory)
        try:
            live = snakemake_processes(directory, frozenset(p.stat().st_uid for p in locks))
        except FileNotFoundError:
            if locks:
                raise RunBusyError(
                    f"Snakemake's lock in {directory} cannot be shown stale without /proc: "
                    "if no Snakemake is running there, `snakemake --unlock` it"
                ) from None
            return  # Snakemake's own lock then keeps runs apart, as nobody unlocks it
        if not live:
            return
        proc = live[0]
        where = "in" if proc.cwd is not None else "perhaps in (its directory is unreadable)"
        what = f"a Snakemake outside `lindyn run` is running {where} {directory}"
        who = f"pid {proc.pid} (`{proc.command}`)"
        if not wait:
            raise RunBusyError(
                f"{what}: {who}. Wait for it to finish (or use `lindyn run --wait`), or "
                f"stop it with `kill {proc.pid}`; its lock is left in place"
            )
        if not announced:
            _say(f"waiting for {who} to finish: {what}")
            announced = True
        time.sleep(1.0)


def run_pipeline(
    directory: Path,
    cores: str,
    extra: Sequence[str] = (),
    report: Path | None = Path("results/report.html"),
    wait: bool = False,
    command: str = "lindyn run",
) -> int:
    """Run the pipeline in ``directory`` as ``make run`` does, never beside a live run.

    Under the run lock: refuse (or wait) while another run is live, unlock Snakemake's
    lock if it is stale, then ``snakemake --cores CORES --rerun-incomplete EXTRA`` and,
    if that succeeds, ``snakemake --cores 1 --report REPORT``.

    Parameters
    ----------
    directory : Path
        The pipeline's working directory (with its Snakefile).
    cores : str
        Snakemake's ``--cores``.
    extra : sequence of str
        Further arguments of the main Snakemake run (and of ``--unlock``, which reads
        the workflow too).
    report : Path or None
        The report to write after a successful run, relative to ``directory``; None
        for none.
    wait : bool
        Wait for a live run to end instead of refusing.
    command : str
        The command recorded in the lock.

    Returns
    -------
    int
        The exit status of the first Snakemake that failed, else 0; 130 after a
        Ctrl-C outside Snakemake.

    Raises
    ------
    RunBusyError
        If another run is live in ``directory`` (and ``wait`` is false).
    """
    directory = directory.resolve()
    snakemake = _snakemake_executable()
    try:
        with run_lock(directory, command, wait=wait):
            _check_no_live_snakemake(directory, wait)
            if snakemake_locks(directory):
                # Neither `lindyn run` (we hold its lock) nor any Snakemake is live here.
                unlock = subprocess.run(
                    [snakemake, *extra, "--unlock"],
                    cwd=directory,
                    capture_output=True,
                    text=True,
                )
                if unlock.returncode != 0:
                    raise RuntimeError(f"snakemake --unlock failed:\n{unlock.stderr}")
                _say(
                    f"removed the stale Snakemake lock in {directory} (left by a run "
                    "that was killed; no Snakemake or `lindyn run` is live there)"
                )
            code = _call([snakemake, "--cores", cores, "--rerun-incomplete", *extra], directory)
            if code == 0 and report is not None:
                code = _call([snakemake, "--cores", "1", "--report", str(report)], directory)
            return code
    except KeyboardInterrupt:
        return 130
