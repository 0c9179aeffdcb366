"""Sensors and the nightly schedule.

- landing_sensor: each new well-formed daily-quote file in data/landing yields an `ingest` run for its dates
  (run key = file name + modification time; the cursor remembers what was seen, so nothing is missed and
  nothing runs twice). A malformed file is quarantined with its reason, and the tick says so.
- retrain_sensor: when at least `min_new_trading_days` have been ingested since the champion's data ended,
  request `retrain`; never while another retrain is queued or running.
- ops_failure_sensor: failures of the project's jobs are appended to data/ops/failures.jsonl and logged.
- nightly_schedule: XTKS trading days at a configurable Asia/Tokyo time; no run on holidays.
"""

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.partitions import TIMEZONE
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths, landing_limits
from atft_dagster.pipeline.champion import load_champion
from atft_dagster.pipeline.landing_plan import plan_landing
from atft_dagster.pipeline.nightly import nightly_decision
from atft_dagster.pipeline.retrain import retrain_decision
from atft_dagster.sources.base import has_quotes
from atft_dagster.sources.files import LandingFileSource

DEFAULT_NIGHTLY_CRON = "0 19 * * 1-5"  # 19:00 Asia/Tokyo, after the 15:30 close and data publication
MONITORED_JOBS = ("ingest", "retrain", "nightly", "train", "prepare")


class RetrainPolicy(dg.ConfigurableResource):
    min_new_trading_days: int = 5


def _range_tags(days: list[date]) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": str(min(days)),
        "dagster/asset_partition_range_end": str(max(days)),
    }


@dg.sensor(
    job_name="ingest",
    minimum_interval_seconds=60,
    description="New files in data/landing -> ingest their trading days.",
)
def landing_sensor(context: dg.SensorEvaluationContext, paths: ProjectPaths) -> dg.SensorResult:
    seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    source = LandingFileSource(paths.layout.landing_dir, paths.layout.quarantine_dir, limits=landing_limits())
    plan = plan_landing(source, seen)
    for err in plan.rejected:
        context.log.warning(str(err))
    requests = [
        dg.RunRequest(run_key=r.key, tags={**_range_tags(r.days), "atft/landing_file": r.file})
        for r in plan.requests
    ]
    cursor = json.dumps(plan.seen, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("; ".join(plan.notes) or "no new landing files"), cursor=cursor
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def _latest_panel_date(instance: dg.DagsterInstance) -> date | None:
    event = instance.get_latest_materialization_event(dg.AssetKey("market_panel"))
    if not event or not event.asset_materialization:
        return None
    last = event.asset_materialization.metadata.get("last_date")
    return date.fromisoformat(last.value) if last else None


@dg.sensor(
    job_name="retrain",
    minimum_interval_seconds=300,
    description="Enough new trading days since the champion's data -> retrain.",
)
def retrain_sensor(
    context: dg.SensorEvaluationContext,
    paths: ProjectPaths,
    retrain_policy: RetrainPolicy,
    mlflow_tracking: MlflowTracking,
) -> dg.SensorResult | dg.SkipReason:
    active = context.instance.get_run_records(
        dg.RunsFilter(
            job_name="retrain",
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    latest = _latest_panel_date(context.instance)
    champion = load_champion(paths.layout, mlflow_tracking.champion_version())
    d = retrain_decision(
        latest,
        champion.data_end if champion else None,
        retrain_policy.min_new_trading_days,
        active[0].dagster_run.status.value if active else None,
    )
    if not d.retrain:
        return dg.SkipReason(d.reason)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"retrain:{latest}", tags={"atft/reason": d.reason})]
    )


@dg.run_failure_sensor(
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,  # recording failures needs no opt-in
    description="Record failures of the project's jobs in data/ops/failures.jsonl.",
)
def ops_failure_sensor(context: dg.RunFailureSensorContext, paths: ProjectPaths) -> None:
    if context.dagster_run.job_name not in MONITORED_JOBS:
        return
    record = {
        "at": datetime.now().isoformat(timespec="seconds"),
        "job": context.dagster_run.job_name,
        "run_id": context.dagster_run.run_id,
        "error": context.failure_event.message,
        "steps": [e.step_key for e in context.get_step_failure_events()],
    }
    log = paths.layout.failures_log
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    context.log.error(f"job {record['job']} failed (run {record['run_id']}): {record['error']}")


def nightly_schedule_for(cron: str = DEFAULT_NIGHTLY_CRON) -> dg.ScheduleDefinition:
    @dg.schedule(
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        job_name="nightly",
        name="nightly_schedule",
        description="Nightly on XTKS trading days: ingest the day, refresh features and graph, predict with the "
        "champion. Skips (with the reason) a day that does not follow the market panel's last day, or that the "
        "market source does not have yet.",
    )
    def nightly_schedule(context: dg.ScheduleEvaluationContext, market_source: MarketSourceResource):
        day = context.scheduled_execution_time.astimezone(ZoneInfo(TIMEZONE)).date()
        decision = nightly_decision(day, _latest_panel_date(context.instance))
        if not decision.run:
            return dg.SkipReason(decision.reason)
        source = market_source.source()
        if not has_quotes(source, day):
            return dg.SkipReason(
                f"the market source '{source.name}' has no quotes for {day} yet: nothing was ingested; once "
                f"they are there, run `atft ingest --start {day} --end {day}`"
            )
        return dg.RunRequest(run_key=f"nightly:{day}", partition_key=str(day))

    return nightly_schedule
