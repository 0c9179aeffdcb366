"""A step must not outlive its run. Under the multiprocess executor each step is a child process of the
run worker; when the worker is killed (``kill -9``, an OOM kill, a lost node) the child would go on
training, holding the GPU, after the run was already marked failed and its pool slot freed. Long steps
(training, the evaluation's graph-off run) watch their parent and stop when it is gone: first an interrupt
(the step fails as interrupted), then, if that does not end it within the grace period, a hard exit. The
training's checkpoints are written atomically per epoch, so a re-executed run resumes from the last one."""

from __future__ import annotations

import _thread
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ORPHANED_EXIT_CODE = 70


@contextmanager
def stop_if_run_worker_dies(
    log: Callable[[str], None], poll_s: float = 2.0, grace_s: float = 30.0
) -> Iterator[None]:
    """Within the block, stop this process if the process that started it dies. A process not started by
    ``multiprocessing`` (the in-process executor, the CLI) has no run worker to watch: nothing happens.

    The interrupt needs a Python handler for SIGINT: a process started in the background (``nohup ... &``)
    inherits SIGINT ignored, and then ``interrupt_main`` does nothing. Within the block such a process gets
    Python's default handler (restored afterwards), so the step still fails as interrupted."""
    parent = multiprocessing.parent_process()
    if parent is None:
        yield
        return
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def watch() -> None:
        while not done.wait(poll_s):
            if not parent.is_alive():
                log(f"the run worker (pid {parent.pid}) is gone: stopping this step (pid {os.getpid()})")
                _thread.interrupt_main()
                if not done.wait(grace_s):
                    os._exit(ORPHANED_EXIT_CODE)
                return

    threading.Thread(target=watch, name="run-worker-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
