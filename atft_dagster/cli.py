"""Command line: ``atft demo`` (ingest the embedded market's history and run every job that exists),
``atft ingest --start --end``, ``atft land --days N`` (new synthetic data lands as files)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get()


# What the console shows of a job's events; every event, DEBUG included, stays in the Dagster event log.
CONSOLE_LOG_LEVEL = "INFO"


def _run_job(
    name: str,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
    log_level: str = CONSOLE_LOG_LEVEL,
):
    from atft_dagster.definitions import defs
    from atft_dagster.defs.launch import job_assets, run_config_problems

    t0 = time.perf_counter()
    job = defs.resolve_job_def(name)
    problems = run_config_problems(run_config, job_assets(job))  # as the instance's coordinator does
    if problems:
        raise SystemExit(f"[atft] job '{name}' refused, its config is invalid: " + "; ".join(problems))
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    result = job.execute_in_process(
        instance=_instance(), tags=tags or {}, run_config=config, raise_on_error=False
    )
    status = "succeeded" if result.success else "FAILED"
    print(
        f"[atft] job '{name}' {status} in {time.perf_counter() - t0:.1f}s (run {result.run_id})", flush=True
    )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(
                    f"[atft]   step {event.step_key}: {event.event_specific_data.error.to_string().strip()}",
                    file=sys.stderr,
                )
        raise SystemExit(1)
    return result


def ingest(start: date, end: date) -> None:
    from atft_dagster.defs.partitions import trading_days_partitions

    if end < start:
        raise SystemExit(f"--end {end} is before --start {start}")
    every = trading_days_partitions.get_partition_keys()
    first, last = date.fromisoformat(every[0]), date.fromisoformat(every[-1])
    if start < first or end > last:
        raise SystemExit(
            f"{start} .. {end} reaches outside the daily partitions, {first} .. {last}: ingest a range inside "
            "them (days before the first partition are not kept; nothing was ingested)"
        )
    keys = [k for k in every if start <= date.fromisoformat(k) <= end]
    if not keys:
        raise SystemExit(f"no XTKS trading days between {start} and {end}")
    print(f"[atft] ingest {len(keys)} trading days {keys[0]} .. {keys[-1]}", flush=True)
    _run_job(
        "ingest",
        {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )


def demo(preset: str | None = None) -> None:
    import os

    if preset:  # read by the code location (settings.market_source_resource) and every job below
        os.environ["ATFT_MARKET_PRESET"] = preset
    from atft_dagster.defs.resources import SyntheticMarketResource
    from atft_dagster.defs.settings import data_dir, market_source_resource
    from atft_dagster.pipeline.layout import DataLayout

    resource = market_source_resource()
    if not isinstance(resource, SyntheticMarketResource):
        raise SystemExit("`atft demo` runs on the embedded synthetic market; unset ATFT_MARKET_SOURCE")
    import yaml

    from atft_dagster.defs.settings import REPO_ROOT

    days = resource.source().history_days()
    ingest(days[0], days[-1])
    _run_job("synthetic_truth")
    config_path = REPO_ROOT / "configs" / "demo_retrain.yaml"
    print(f"[atft] retrain with {config_path}", flush=True)
    result = _run_job("retrain", run_config=yaml.safe_load(config_path.read_text()))
    md = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    print(f"[atft] tables (Parquet): {DataLayout(data_dir()).tables_dir}")
    ev = md.get("evaluation_report", {})
    if "report" in ev:
        print(f"[atft] evaluation report: {ev['report'].value}")
        print(
            f"[atft]   model test RankIC (primary horizon) {ev['model_rank_ic_primary'].value:.4f}, {ev['oracle_fraction'].value:.2f} of the oracle"
        )
    if "champion_model" in md:
        print(f"[atft] champion: {md['champion_model']['decision'].value}")
    if "latest_predictions" in md:
        lp = md["latest_predictions"]
        ranked_by = f" ({lp['checkpoints'].value})" if "checkpoints" in lp else ""
        print(f"[atft] predictions for {lp['date'].value}: {lp['csv'].value}{ranked_by}")
    print("[atft] browse everything in the UI: ./run ui  (http://127.0.0.1:3000)")


def land(n: int, after: date | None) -> None:
    from atft_dagster.defs.settings import data_dir, market_source_resource
    from atft_dagster.landing import land_days, next_days_to_land
    from atft_dagster.pipeline.layout import DataLayout
    from atft_dagster.sources.synthetic import SyntheticSource

    source = SyntheticSource(market_source_resource("synthetic").market_config())
    landing = DataLayout(data_dir()).landing_dir
    days = next_days_to_land(source, landing, n, after)
    for path in land_days(source, landing, days):
        print(f"[atft] landed {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atft", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    from atft_dagster.market import PRESET_NAMES

    p_demo = sub.add_parser("demo", help="ingest the embedded market's history and run every job on it")
    p_demo.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default=None,
        help="synthetic market preset (default: $ATFT_MARKET_PRESET or demo); use a fresh ATFT_DATA_DIR per preset",
    )
    p_ing = sub.add_parser("ingest", help="run the ingest job for a range of trading days")
    p_ing.add_argument("--start", type=date.fromisoformat, required=True)
    p_ing.add_argument("--end", type=date.fromisoformat, required=True)
    p_land = sub.add_parser("land", help="write the synthetic market's next trading day(s) into data/landing")
    p_land.add_argument("--days", type=int, default=1)
    p_land.add_argument("--after", type=date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        demo(args.preset)
    elif args.cmd == "ingest":
        ingest(args.start, args.end)
    elif args.cmd == "land":
        land(args.days, args.after)


if __name__ == "__main__":
    main()
