"""The CLI the README's demo command runs: its job runner passes run config and tags through."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from atft_dagster import cli


def test_run_job_passes_run_config_and_fails_loudly(monkeypatch, tmp_path):
    calls = {}

    class FakeJob:
        class asset_layer:  # noqa: N801 - the attribute the CLI reads
            selected_asset_keys = (dg.AssetKey("model_checkpoint"),)

        def execute_in_process(self, **kwargs):
            calls.update(kwargs)

            class R:
                success = True
                run_id = "r"
                all_events = []

            return R()

    class FakeDefs:
        def resolve_job_def(self, name):
            calls["name"] = name
            return FakeJob()

    import atft_dagster.definitions as definitions

    monkeypatch.setattr(definitions, "defs", FakeDefs())
    monkeypatch.setattr(cli, "_instance", lambda: dg.DagsterInstance.ephemeral())
    cli._run_job("retrain", tags={"a": "b"}, run_config={"ops": {}})
    assert calls["name"] == "retrain" and calls["tags"] == {"a": "b"}
    assert calls["run_config"] == {"ops": {}, "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    calls.clear()
    bad = {"ops": {"model_checkpoint": {"config": {"hidden": 30, "attn_heads": 4}}}}
    with pytest.raises(SystemExit, match="refused, its config is invalid: .*hidden must be divisible"):
        cli._run_job("retrain", run_config=bad)
    assert "run_config" not in calls  # refused before the job ran


def test_the_console_shows_info_and_above_while_the_event_log_keeps_debug(monkeypatch, capfd):
    @dg.op
    def noisy(context):
        context.log.debug("debug-marker")
        context.log.info("info-marker")

    @dg.job
    def small():
        noisy()

    class Defs:
        def resolve_job_def(self, name):
            return small

    import atft_dagster.definitions as definitions

    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setattr(definitions, "defs", Defs())
    monkeypatch.setattr(cli, "_instance", lambda: instance)
    result = cli._run_job("small")
    err = capfd.readouterr().err
    assert "info-marker" in err and "debug-marker" not in err
    assert "STEP_START" not in err  # Dagster's own DEBUG events stay off the console
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert "debug-marker" in logged and any(
        "STEP_START" in str(e.dagster_event) for e in instance.all_logs(result.run_id)
    )
    cli._run_job("small", log_level="DEBUG")
    assert "debug-marker" in capfd.readouterr().err


def test_demo_config_is_valid_for_the_retrain_job():
    import yaml

    from atft_dagster.definitions import defs
    from atft_dagster.defs.settings import REPO_ROOT

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "demo_retrain.yaml").read_text())
    job = defs.resolve_job_def("retrain")
    assert job.run_config_schema.config_type is not None
    from dagster._config import process_config

    assert process_config(job.run_config_schema.config_type, cfg).success


def test_cli_rejects_unknown_commands():
    with pytest.raises(SystemExit):
        cli.main(["nonsense"])


def test_ingest_outside_the_partitions_fails_naming_the_allowed_range(monkeypatch):
    from datetime import date

    from atft_dagster.defs.settings import DEFAULT_HISTORY_START

    started = []
    monkeypatch.setattr(cli, "_run_job", lambda *a, **k: started.append(a))
    with pytest.raises(SystemExit, match=f"outside the daily partitions, {DEFAULT_HISTORY_START} .."):
        cli.ingest(date(2015, 1, 5), date(2022, 12, 30))  # history before the first partition
    with pytest.raises(SystemExit, match="before --start"):
        cli.ingest(date(2022, 3, 1), date(2022, 2, 1))
    assert not started  # nothing ingested
    cli.ingest(date(2022, 3, 1), date(2022, 3, 4))
    ((name, tags),) = started
    assert name == "ingest" and tags["dagster/asset_partition_range_start"] == "2022-03-01"
    assert tags["dagster/asset_partition_range_end"] == "2022-03-04"


def _first_partition(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "from atft_dagster.defs.partitions import trading_days_partitions as p; print(p.get_first_partition_key())"
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_the_history_start_is_a_setting():
    """ATFT_HISTORY_START moves the first daily partition (2017-01-04 is a session); a bad value is refused."""
    assert _first_partition({"ATFT_HISTORY_START": "2017-01-01"}).stdout.strip() == "2017-01-04"
    bad = _first_partition({"ATFT_HISTORY_START": "01/04/2017"})
    assert bad.returncode != 0 and "ATFT_HISTORY_START must be a date YYYY-MM-DD" in bad.stderr
