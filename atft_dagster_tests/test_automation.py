"""Sensors, the nightly schedule, and the end-to-end landing -> ingest -> retrain -> predictions flow."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest

from atft_dagster.definitions import build_definitions
from atft_dagster.defs.automation import (
    RetrainPolicy,
    landing_sensor,
    nightly_schedule_for,
    ops_failure_sensor,
    retrain_sensor,
)
from atft_dagster.defs.mlflow_resource import REGISTERED_MODEL
from atft_dagster.defs.partitions import trading_days_partitions
from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.landing import land_days, next_days_to_land
from atft_dagster.pipeline.records import ChampionState
from atft_dagster_tests.helpers import SMALL, TINY, champion_of, tracking

RETRAIN_CONFIG = {
    "ops": {
        "model_checkpoint": {"config": {**TINY, "ensemble_seeds": 1}},  # automation, not the ensemble
        "evaluation_report": {
            "config": {
                "lightgbm_max_rounds": 10,
                "lightgbm_num_leaves": [7],
                "lightgbm_min_child_samples": [50],
                "graph_off_baseline": False,
                "deployed_rows": False,
            }
        },
    }
}
TOKYO = ZoneInfo("Asia/Tokyo")


def _sensor(sensor, paths, cursor=None, instance=None, **resources):
    if sensor is retrain_sensor:
        resources.setdefault("mlflow_tracking", tracking(paths.root))
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"paths": paths, **resources})
    return sensor(ctx), ctx


# ---- landing sensor --------------------------------------------------------------------------
def test_landing_sensor_new_file_same_file_malformed_and_nothing(tmp_path):
    paths = ProjectPaths(data_dir=str(tmp_path))
    result, _ = _sensor(landing_sensor, paths)
    assert not result.run_requests and "no new landing files" in result.skip_reason.skip_message
    src = SMALL.source()
    days = next_days_to_land(src, paths.layout.landing_dir, 2)
    land_days(src, paths.layout.landing_dir, days)
    result, _ = _sensor(landing_sensor, paths)
    assert len(result.run_requests) == 2  # one per daily-quote file; master and TOPIX files ride along
    req = sorted(result.run_requests, key=lambda r: r.run_key)[0]
    assert req.tags["dagster/asset_partition_range_start"] == str(days[0]) and req.run_key.startswith(
        f"daily_quotes_{days[0]}.csv:"
    )
    again, _ = _sensor(landing_sensor, paths, cursor=result.cursor)
    assert not again.run_requests  # the same files do not run twice
    bad = paths.layout.landing_dir / "daily_quotes_bad.csv"
    bad.write_text("Date,Code,O,H,L,C,Vo,Va,AdjFactor\n2024-06-27,72030,-1,10,9,9.5,100,1000,1\n")
    third, _ = _sensor(landing_sensor, paths, cursor=result.cursor)
    assert not third.run_requests and "quarantined daily_quotes_bad.csv" in third.skip_reason.skip_message
    assert (paths.layout.quarantine_dir / "daily_quotes_bad.csv.reason.txt").exists() and not bad.exists()


def test_a_header_only_file_is_quarantined_and_the_good_file_beside_it_still_runs(tmp_path):
    paths = ProjectPaths(data_dir=str(tmp_path))
    src = SMALL.source()
    land_days(src, paths.layout.landing_dir, next_days_to_land(src, paths.layout.landing_dir, 1))
    (paths.layout.landing_dir / "daily_quotes_empty.csv").write_text("Date,Code,O,H,L,C,Vo,Va,AdjFactor\n")
    (paths.layout.landing_dir / "nothing.parquet").write_bytes(b"")
    result, _ = _sensor(landing_sensor, paths)
    assert len(result.run_requests) == 1  # the good quotes file
    assert (paths.layout.quarantine_dir / "daily_quotes_empty.csv.reason.txt").exists()
    assert "no data rows" in (paths.layout.quarantine_dir / "daily_quotes_empty.csv.reason.txt").read_text()
    assert (paths.layout.quarantine_dir / "nothing.parquet.reason.txt").exists()


def test_upper_case_suffixes_are_landing_files(tmp_path):
    paths = ProjectPaths(data_dir=str(tmp_path))
    src = SMALL.source()
    land_days(src, paths.layout.landing_dir, next_days_to_land(src, paths.layout.landing_dir, 1))
    for f in list(paths.layout.landing_dir.glob("daily_quotes_*.csv")):
        f.rename(f.with_suffix(".CSV"))
    result, _ = _sensor(landing_sensor, paths)
    assert len(result.run_requests) == 1 and result.run_requests[0].run_key.split(":")[0].endswith(".CSV")


# ---- schedule --------------------------------------------------------------------------------
def _tick(repo, instance, when: datetime, source=SMALL):
    """One evaluation of the nightly schedule (the context is closed after, resources and all)."""
    schedule = repo.get_schedule_def("nightly_schedule")
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        repository_def=repo,
        resources={"market_source": source},
    ) as context:
        return schedule.evaluate_tick(context)


@pytest.mark.parametrize(
    ("when", "runs"),
    [(datetime(2024, 7, 1, 19, 0, tzinfo=TOKYO), True), (datetime(2024, 7, 15, 19, 0, tzinfo=TOKYO), False)],
)
def test_nightly_schedule_trading_day_and_holiday(when, runs, tmp_path):
    repo = build_definitions(tmp_path, SMALL).get_repository_def()
    with dg.instance_for_test() as instance:
        _report_panel(instance, "2024-06-28" if runs else "2024-07-12")  # the previous session
        result = _tick(repo, instance, when)
    if runs:
        assert [r.partition_key for r in result.run_requests] == ["2024-07-01"]
    else:  # 2024-07-15 is Marine Day
        assert not result.run_requests and "not an XTKS trading day" in result.skip_message


def test_nightly_skips_a_day_the_panel_cannot_reach_and_writes_nothing(tmp_path):
    """The panel ends on 2024-06-21: a nightly run for 2024-07-01 would write that day's raw quotes and then
    fail on the gap (leaving a stray partition); it is skipped, naming the days to ingest."""
    repo = build_definitions(tmp_path, SMALL).get_repository_def()
    when = datetime(2024, 7, 1, 19, 0, tzinfo=TOKYO)
    with dg.instance_for_test() as instance:
        none_yet = _tick(repo, instance, when)
        _report_panel(instance, "2024-06-21")
        behind = _tick(repo, instance, when)
    assert not none_yet.run_requests and "no market panel yet" in none_yet.skip_message
    assert not behind.run_requests and "5 trading day(s) before 2024-07-01" in behind.skip_message
    assert "atft ingest --start 2024-06-24 --end 2024-07-01" in behind.skip_message
    assert not (tmp_path / "tables").exists()


def test_nightly_skips_a_day_the_source_does_not_have_yet(tmp_path):
    """Landing files end on the panel's last day: the next session's nightly run is skipped, naming the
    source, and writes nothing; once that day's file lands, the run is requested."""
    from atft_dagster.defs.resources import LandingFilesResource

    layout = ProjectPaths(data_dir=str(tmp_path)).layout
    src = SMALL.source()
    last = src.history_days()[-1]
    land_days(src, layout.landing_dir, [last])
    files = LandingFilesResource(
        landing_dir=str(layout.landing_dir), quarantine_dir=str(layout.quarantine_dir)
    )
    repo = build_definitions(tmp_path, files).get_repository_def()
    (day,) = next_days_to_land(src, layout.landing_dir, 1)
    when = datetime(day.year, day.month, day.day, 19, 0, tzinfo=TOKYO)

    with dg.instance_for_test() as instance:
        _report_panel(instance, str(last))
        lacking = _tick(repo, instance, when, files)
        land_days(src, layout.landing_dir, [day])
        landed = _tick(repo, instance, when, files)
    assert not lacking.run_requests and f"source 'files' has no quotes for {day} yet" in lacking.skip_message
    assert [r.partition_key for r in landed.run_requests] == [str(day)]
    assert not (tmp_path / "tables").exists()


def test_schedule_cron_is_configurable():
    assert nightly_schedule_for("30 20 * * 1-5").cron_schedule == "30 20 * * 1-5"
    assert nightly_schedule_for().execution_timezone == "Asia/Tokyo"


# ---- retrain sensor --------------------------------------------------------------------------
def _report_panel(instance, last_date: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="market_panel", metadata={"last_date": last_date})
    )


def test_retrain_sensor_policy(tmp_path):
    paths = ProjectPaths(data_dir=str(tmp_path))
    policy = RetrainPolicy(min_new_trading_days=3)
    with dg.instance_for_test() as instance:
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert "not been materialised" in result.skip_message
        _report_panel(instance, "2024-07-05")
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert result.run_requests[0].tags["atft/reason"] == "no champion yet"
        version = _registered_version(tmp_path)
        champion = ChampionState(
            run_id="r0",
            folds=None,
            checkpoints=["x"],
            data_end=date(2024, 7, 3),
            mlflow_model_version=version,
        )
        paths.layout.champion_record(version).parent.mkdir(parents=True)
        paths.layout.champion_record(version).write_text(champion.to_json())
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert result.run_requests, "a record without the alias is not the champion"
        tracking(tmp_path).promote(version)  # the alias is the champion
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert "2 new trading day(s)" in result.skip_message
        _report_panel(instance, "2024-07-08")
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert result.run_requests[0].run_key == "retrain:2024-07-08"
        instance.add_run(dg.DagsterRun(job_name="retrain", run_id="r1", status=dg.DagsterRunStatus.STARTED))
        result, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert "already" in result.skip_message  # never two retrains at once


def _registered_version(root) -> str:
    client = tracking(root).client()
    client.create_registered_model(REGISTERED_MODEL)
    return str(client.create_model_version(REGISTERED_MODEL, source=str(root)).version)


def test_failure_sensor_records_failures(tmp_path):
    d = build_definitions(tmp_path, SMALL)
    with dg.instance_for_test() as instance:
        keys = trading_days_partitions.get_partition_keys()
        run = d.resolve_job_def("ingest").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[5],
                "dagster/asset_partition_range_end": keys[5],
            },
            raise_on_error=False,
        )
        assert run.success
        bad = d.resolve_job_def("train").execute_in_process(instance=instance, raise_on_error=False)
        assert not bad.success
        failure = next(
            e
            for e in bad.all_events
            if e.event_type_value == "PIPELINE_FAILURE" or e.event_type_value == "RUN_FAILURE"
        )
        ctx = dg.build_run_status_sensor_context(
            sensor_name="ops_failure_sensor",
            dagster_instance=instance,
            dagster_run=bad.dagster_run,
            dagster_event=failure,
            resources={"paths": ProjectPaths(data_dir=str(tmp_path))},
        ).for_run_failure()
        ops_failure_sensor(ctx)
    lines = (tmp_path / "ops" / "failures.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["job"] == "train" and json.loads(lines[-1])["run_id"] == bad.run_id


# ---- end to end ------------------------------------------------------------------------------
def _land_and_ingest(d, instance, paths, n: int, cursor: str | None) -> tuple[list, str]:
    """The simulator lands ``n`` trading days as files; the landing sensor's requests run ``ingest``.
    Returns the days and the sensor's new cursor."""
    days = next_days_to_land(SMALL.source(), paths.layout.landing_dir, n)
    land_days(SMALL.source(), paths.layout.landing_dir, days)
    landed, ctx = _sensor(landing_sensor, paths, cursor=cursor, instance=instance)
    assert len(landed.run_requests) == n
    for req in landed.run_requests:
        assert d.resolve_job_def("ingest").execute_in_process(instance=instance, tags=req.tags).success
    return days, landed.cursor


def test_end_to_end_landing_to_predictions(tmp_path):
    """Ingest -> retrain -> the simulator lands 1 day -> landing sensor -> ingest -> the retrain sensor
    skips (policy 5 days, read from the champion the real assets wrote) -> 4 more days land -> the sensor
    requests a retrain -> retrain -> predictions for the last landed day."""
    d = build_definitions(tmp_path, SMALL)
    paths = ProjectPaths(data_dir=str(tmp_path))
    keys = trading_days_partitions.get_partition_keys()
    with dg.instance_for_test() as instance:
        tags = {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[259],
        }
        assert d.resolve_job_def("ingest").execute_in_process(instance=instance, tags=tags).success
        assert (
            d.resolve_job_def("retrain")
            .execute_in_process(instance=instance, run_config=RETRAIN_CONFIG)
            .success
        )
        champion = champion_of(tmp_path)
        assert str(champion.data_end) == keys[259]
        policy = RetrainPolicy(min_new_trading_days=5)
        _, cursor = _land_and_ingest(d, instance, paths, 1, None)
        wait, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        assert isinstance(wait, dg.SkipReason) and "1 new trading day(s)" in wait.skip_message
        days, _ = _land_and_ingest(d, instance, paths, 4, cursor)
        day = days[-1]
        trigger, _ = _sensor(retrain_sensor, paths, instance=instance, retrain_policy=policy)
        (retrain_req,) = trigger.run_requests
        assert retrain_req.tags["atft/reason"].startswith("5 new trading days")
        assert retrain_req.run_key == f"retrain:{day}"
        assert (
            d.resolve_job_def("retrain")
            .execute_in_process(instance=instance, run_config=RETRAIN_CONFIG, tags=retrain_req.tags)
            .success
        )
    latest = pl.read_parquet(tmp_path / "tables" / "latest_predictions.parquet")
    assert latest["date"][0] == day and (tmp_path / "predictions" / f"{day}.csv").exists()
