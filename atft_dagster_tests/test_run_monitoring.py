"""Pool slots come back and no step outlives its run, with the project's instance config, a real daemon
and a real code server: a started run in the `gpu` pool is terminated (as from the UI), and another one's
run worker is killed with SIGKILL. Both times the slot is free again and the step process is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def _parent(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


@pytest.fixture()
def daemon(tmp_path, monkeypatch):
    """DAGSTER_HOME with the repo's dagster.yaml (monitoring polled every second, slots freed a second
    after a run ends), a workspace with the probe location, and `dagster-daemon run`."""
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    cfg["run_monitoring"] |= {"poll_interval_seconds": 1, "free_slots_after_run_end_seconds": 1}
    cfg["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    workspace = tmp_path / "workspace.yaml"
    location = {"module_name": "atft_dagster_tests.slot_probe_defs", "working_directory": str(REPO)}
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "ATFT_PROBE_DIR": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # create every SQLite storage first: the daemon and the first `dagster job launch` would otherwise both
    # find none and create them at the same moment
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.upgrade()
        instance.event_log_storage.get_concurrency_info("gpu")
    proc = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield tmp_path, workspace, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _start_probe(instance: dg.DagsterInstance, home: Path, workspace: Path, env: dict) -> tuple[str, int]:
    """Launch the probe job through the queue; wait until its step holds the `gpu` slot."""
    before = {r.run_id for r in instance.get_runs()}
    for attempt in (1, 2):
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "slot_probe"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        failure = f"dagster job launch failed (attempt {attempt}):\n{done.stdout}\n{done.stderr}"
        created = {r.run_id for r in instance.get_runs()} - before
        if done.returncode == 0 or created:
            break
        # the launch is this test's setup, not its subject: one retry, and the failure shows in the warnings
        warnings.warn(failure, stacklevel=1)
    assert done.returncode == 0, failure
    run_id = next(r.run_id for r in instance.get_runs() if r.run_id not in before)
    pid_file = home / f"{run_id}.pid"
    pid = int(_wait(lambda: pid_file.exists() and pid_file.read_text(), 180, "the step to start"))
    claimed = _wait(
        lambda: instance.event_log_storage.get_concurrency_info("gpu").active_run_ids, 60, "the slot claim"
    )
    assert claimed == {run_id}
    return run_id, pid


def _slot_free(instance: dg.DagsterInstance) -> bool:
    return not instance.event_log_storage.get_concurrency_info("gpu").active_run_ids


def test_terminated_and_killed_runs_free_the_gpu_slot_and_stop_their_step(daemon):
    home, workspace, env = daemon
    with dg.DagsterInstance.get() as instance:
        # terminated, as the UI's "Terminate" does
        run_id, step = _start_probe(instance, home, workspace, env)
        assert instance.run_launcher.terminate(run_id)
        _wait(lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED, 60, "CANCELED")
        _wait(lambda: _slot_free(instance), 60, "the slot after termination")
        _wait(lambda: _gone(step), 30, "the terminated run's step to stop")

        # the run worker killed with SIGKILL: the code server marks the run failed, the daemon frees the
        # slot, and the step, orphaned, stops itself
        run_id, step = _start_probe(instance, home, workspace, env)
        os.kill(_parent(step), signal.SIGKILL)
        _wait(lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE, 90, "FAILURE")
        _wait(lambda: _slot_free(instance), 60, "the slot after the kill")
        _wait(lambda: _gone(step), 30, "the orphaned step to stop")
        logged = " ".join(e.message or "" for e in instance.all_logs(run_id))
        assert "run worker" in logged and "is gone" in logged
