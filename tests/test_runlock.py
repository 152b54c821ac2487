"""`lindyn run` never breaks a live run's lock, and unlocks only a provably stale one.

Each end-to-end test runs a real Snakemake on a one-job Snakefile whose job sleeps, in
its own directory: a second run started meanwhile (`lindyn run` or a Snakemake by hand)
is refused, naming the live one, and leaves its lock and its output alone; a lock left by
a SIGKILLed Snakemake is removed and the run proceeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import record_reliability

from lindyn.runlock import (
    LOCK_FILE,
    RunBusyError,
    _call,
    is_snakemake,
    run_lock,
    run_pipeline,
    snakemake_locks,
    snakemake_processes,
)

# The job sleeps `--config sleep=SECONDS` (none by default), then writes its output.
SNAKEFILE = """\
rule all:
    input:
        "results/out.txt",


rule slow:
    output:
        "results/out.txt",
    params:
        sleep=config.get("sleep", 0),
    shell:
        "sleep {params.sleep} && echo done > {output}"
"""
OUTPUT = Path("results/out.txt")


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    return tmp_path.resolve()  # as messages name it


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes started by a test, each in its own group, all killed at its end."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action, as a terminal's processes have it: a test suite started
    in the background of a shell inherits SIGINT ignored, and Ctrl-C would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(processes: list[subprocess.Popen], argv: list[str], cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    processes.append(proc)
    return proc


def _snakemake(processes: list[subprocess.Popen], workdir: Path, sleep: float):
    """A Snakemake started by hand in ``workdir``, once its job runs."""
    proc = _start(
        processes,
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config", f"sleep={sleep}"],
        workdir,
    )
    _wait_for(lambda: any((workdir / ".snakemake/incomplete").glob("*")))
    return proc


def _lindyn_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lindyn", "run", "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _finished(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


# ---------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snakemake", "--cores", "2"], True),
        (["/venv/bin/python3", "/venv/bin/snakemake", "--cores", "2"], True),
        (["python", "-m", "snakemake", "--unlock"], True),
        (["python", "-u", "-m", "snakemake"], True),
        (["python", "-m", "lindyn", "run"], False),
        (["python", "/venv/bin/lindyn", "run"], False),
        (["vim", "snakemake.log"], False),
        ([], False),
    ],
)
def test_what_is_a_snakemake_process(argv, expected):
    assert is_snakemake(argv) is expected


def test_a_snakemake_process_is_live_only_in_its_own_directory(tmp_path, processes):
    workdir, elsewhere = tmp_path / "pipeline", tmp_path / "elsewhere"
    workdir.mkdir()
    elsewhere.mkdir()
    fake = tmp_path / "bin" / "snakemake"  # a process that looks like `snakemake`
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(30)\n")
    proc = _start(processes, [sys.executable, str(fake), "--cores", "1"], workdir)
    _wait_for(lambda: proc.pid in [p.pid for p in snakemake_processes(workdir)])
    [live] = [p for p in snakemake_processes(workdir) if p.pid == proc.pid]
    assert live.cwd == workdir.resolve()
    assert str(fake) in live.command
    assert proc.pid not in [p.pid for p in snakemake_processes(elsewhere)]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.pid not in [p.pid for p in snakemake_processes(workdir)]


def test_a_lock_held_by_a_live_snakemake_is_left_alone(workdir, processes):
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(f"{workdir / OUTPUT}\n")
    fake = workdir / "snakemake"
    fake.write_text("import time\ntime.sleep(30)\n")
    proc = _start(processes, [sys.executable, str(fake)], workdir)
    _wait_for(lambda: bool(snakemake_processes(workdir)))
    with pytest.raises(RunBusyError, match=re.escape(f"running in {workdir}: pid {proc.pid} (`")):
        run_pipeline(workdir, "1")
    assert snakemake_locks(workdir) == [locks / "0.output.lock"]
    record_reliability("concurrent runs refused")


def test_the_run_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with run_lock(tmp_path, "first command"):
        record = json.loads((tmp_path / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        assert record["command"] == "first command"
        with pytest.raises(RunBusyError) as caught:
            with run_lock(tmp_path, "second command"):
                pytest.fail("two holders of the run lock")
        message = str(caught.value)
        assert f"pid {os.getpid()} on " in message
        assert "(`first command`)" in message
        assert f"kill {os.getpid()}" in message
        assert "--wait" in message
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released, and cleared
    with run_lock(tmp_path, "third command"):
        pass


def test_the_run_lock_waits_for_its_holder_when_asked(tmp_path):
    acquired = threading.Event()

    def second() -> None:
        with run_lock(tmp_path, "second", wait=True):
            acquired.set()

    with run_lock(tmp_path, "first"):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not acquired.wait(0.5)
    assert acquired.wait(5)
    waiter.join()


# ---------------------------------------------------------------- end to end


def test_ctrl_c_stops_the_run_once_its_snakemake_has_ended(tmp_path):
    """Ctrl-C while Snakemake runs: wait for it, then stop (no report step), even if it
    happened to finish its last job (exit 0) after the interrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            _call([sys.executable, "-c", "import time; time.sleep(2)"], tmp_path)
        assert time.monotonic() - start >= 2.0  # the child ran to its end first
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_lindyn_run_refuses_while_a_snakemake_runs(workdir, processes):
    first = _snakemake(processes, workdir, sleep=5)
    locks = snakemake_locks(workdir)
    assert locks
    second = _lindyn_run(workdir)
    assert second.returncode != 0
    assert f"a Snakemake outside `lindyn run` is running in {workdir}" in second.stderr
    assert f"pid {first.pid} (`" in second.stderr
    assert f"kill {first.pid}" in second.stderr
    assert snakemake_locks(workdir) == locks  # its lock left in place
    _finished(first)
    assert (workdir / OUTPUT).read_text() == "done\n"
    record_reliability("concurrent runs refused")


@pytest.mark.slow
def test_two_lindyn_runs_the_second_refuses_naming_the_first(workdir, processes):
    first = _start(
        processes,
        [sys.executable, "-m", "lindyn", "run", "--cores", "1", "--", "--config", "sleep=5"],
        workdir,
    )
    _wait_for(lambda: any((workdir / ".snakemake/incomplete").glob("*")))
    second = _lindyn_run(workdir, "--cores", "1")
    assert second.returncode != 0
    assert f"already running: pid {first.pid} on " in second.stderr
    assert f"kill {first.pid}" in second.stderr
    out = _finished(first)
    assert "stale" not in out
    assert (workdir / OUTPUT).read_text() == "done\n"
    assert (workdir / "results/report.html").exists()
    record_reliability("concurrent runs refused")


@pytest.mark.slow
def test_a_stale_lock_of_a_killed_snakemake_is_removed_and_the_run_proceeds(workdir, processes):
    killed = _snakemake(processes, workdir, sleep=30)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert snakemake_locks(workdir)
    run = _lindyn_run(workdir, "--cores", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"removed the stale Snakemake lock in {workdir}" in run.stderr
    assert (workdir / OUTPUT).read_text() == "done\n"
    assert (workdir / "results/report.html").exists()
    assert not snakemake_locks(workdir)
    record_reliability("stale Snakemake locks removed")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "to_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["kill", "ctrl-c"]
)
def test_a_stopped_run_holds_its_lock_until_its_snakemake_has_ended(
    workdir, processes, signum, to_group
):
    """`kill PID` (the advice to stop a live run) and Ctrl-C leave no Snakemake running."""
    run = _start(
        processes,
        [sys.executable, "-m", "lindyn", "run", "--cores", "1", "--", "--config", "sleep=3"],
        workdir,
    )
    _wait_for(lambda: any((workdir / ".snakemake/incomplete").glob("*")))
    (os.killpg if to_group else os.kill)(run.pid, signum)
    run.wait(timeout=60)
    assert run.returncode != 0
    assert not snakemake_processes(workdir)
    assert not snakemake_locks(workdir)
    with run_lock(workdir, "next"):
        pass


def test_lindyn_run_passes_arguments_and_the_exit_status_on(workdir):
    run = _lindyn_run(workdir, "--cores", "1", "--no-report", "--", "no/such/target")
    assert run.returncode == 1
    assert "no/such/target" in run.stdout + run.stderr
    assert not (workdir / LOCK_FILE).read_text()  # released
