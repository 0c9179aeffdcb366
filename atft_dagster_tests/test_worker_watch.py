"""A step process stops when its run worker is killed (kill -9), instead of training on as an orphan."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from atft_dagster.defs.worker_watch import stop_if_run_worker_dies


def _step(pid_file: str, out_file: str, ignore_sigint: bool) -> None:
    """A long step: records its pid, works until stopped, and records how it ended."""
    if ignore_sigint:  # as in a process started in the background (nohup ... &)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    Path(pid_file).write_text(str(os.getpid()))
    try:
        with stop_if_run_worker_dies(lambda msg: Path(out_file).write_text(msg), poll_s=0.1, grace_s=20):
            while True:
                sum(range(10_000))  # Python work: an interrupt lands between bytecodes
    except KeyboardInterrupt:
        with open(out_file, "a") as f:
            f.write("\ninterrupted")


def _run_worker(pid_file: str, out_file: str, ignore_sigint: bool) -> None:
    child = multiprocessing.get_context("spawn").Process(
        target=_step, args=(pid_file, out_file, ignore_sigint)
    )
    child.start()
    child.join()


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited, not yet reaped by whoever adopted it


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("ignore_sigint", [False, True])
def test_a_step_stops_when_its_run_worker_is_killed(tmp_path, ignore_sigint):
    """Through the interrupt (not the hard exit), also where SIGINT was inherited ignored."""
    pid_file, out_file = tmp_path / "step.pid", tmp_path / "step.out"
    worker = multiprocessing.get_context("spawn").Process(
        target=_run_worker, args=(str(pid_file), str(out_file), ignore_sigint)
    )
    worker.start()
    assert _wait(lambda: pid_file.exists() and pid_file.read_text(), 60), "the step never started"
    step = int(pid_file.read_text())
    time.sleep(0.5)
    assert not _gone(step)  # a living worker: the step works on
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    assert _wait(lambda: _gone(step), 40), "the orphaned step went on"
    text = out_file.read_text()
    assert f"run worker (pid {worker.pid}) is gone" in text and "interrupted" in text


def test_without_a_run_worker_nothing_is_watched():
    """In process (the CLI, execute_in_process) the block simply runs."""
    with stop_if_run_worker_dies(lambda msg: None, poll_s=0.01):
        time.sleep(0.05)
    assert multiprocessing.parent_process() is None
