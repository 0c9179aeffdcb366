"""Deployment settings read from the environment, in one place (the Dagster layer only).

ATFT_DATA_DIR       where Parquet tables, landing files and reports live (default: <repo>/data)
ATFT_MARKET_SOURCE  synthetic (default) | jquants | files
ATFT_MARKET_PRESET  the synthetic market's preset: demo (default) | realistic
JQUANTS_API_KEY     the J-Quants API v2 key (read through dg.EnvVar, never logged)
ATFT_JQUANTS_BASE_URL  the J-Quants API's base URL (default: J-Quants' own; a proxy or a local stand-in)
ATFT_JQUANTS_WORKERS   sessions of daily bars requested at once from J-Quants (default 1)
ATFT_NIGHTLY_CRON   cron of the nightly schedule in Asia/Tokyo (default "0 19 * * 1-5")
ATFT_DATABASE_URL   postgresql://user:password@host:port/db: Dagster's runs, events and schedules (through
                    dagster.postgres.yaml, which ./run selects when this is set) and MLflow's tracking and
                    model registry (schema `mlflow` of the same database); unset = SQLite under the data folder
ATFT_EXECUTOR       multiprocess (default: steps are processes, member trainings bounded by the `gpu` pool) |
                    k8s (a pod per step, one GPU per member training; needs the `k8s` extra)
ATFT_HISTORY_START  the first daily partition (YYYY-MM-DD, default 2022-01-04): ingestable history starts here
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg

from atft_dagster.defs.executors import EXECUTORS
from atft_dagster.defs.resources import (
    JQuantsResource,
    LandingFilesResource,
    MarketSourceResource,
    SyntheticMarketResource,
)
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.pipeline.layout import DataLayout

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("synthetic", "jquants", "files")


DEFAULT_HISTORY_START: date = SyntheticMarketConfig.model_fields[
    "start"
].default  # the embedded market's first


def history_start() -> date:
    raw = os.environ.get("ATFT_HISTORY_START")
    if not raw:
        return DEFAULT_HISTORY_START
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"ATFT_HISTORY_START must be a date YYYY-MM-DD, got {raw!r}") from None


PG_DRIVER_SCHEME = "postgresql+psycopg2://"  # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3


def with_pg_driver(url: str) -> str:
    """A PostgreSQL URL naming the driver Dagster's and MLflow's stores use (psycopg2)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return PG_DRIVER_SCHEME + url[len(scheme) :]
    if not url.startswith(PG_DRIVER_SCHEME):
        raise ValueError(f"ATFT_DATABASE_URL must be a postgresql:// URL, got {url.split('@')[-1]!r}")
    return url


def database_url() -> str | None:
    raw = os.environ.get("ATFT_DATABASE_URL")
    return with_pg_driver(raw) if raw else None


def executor_name() -> str:
    name = os.environ.get("ATFT_EXECUTOR", "multiprocess")
    if name not in EXECUTORS:
        raise ValueError(f"ATFT_EXECUTOR={name!r}: one of {', '.join(EXECUTORS)}")
    return name


def data_dir() -> Path:
    return Path(os.environ.get("ATFT_DATA_DIR", REPO_ROOT / "data")).resolve()


def market_source_resource(kind: str | None = None, root: Path | None = None) -> MarketSourceResource:
    kind = kind or os.environ.get("ATFT_MARKET_SOURCE", "synthetic")
    root = root or data_dir()
    if kind == "synthetic":
        return SyntheticMarketResource(preset=os.environ.get("ATFT_MARKET_PRESET", "demo"))
    if kind == "jquants":
        return JQuantsResource(
            api_key=dg.EnvVar("JQUANTS_API_KEY"),
            base_url=os.environ.get("ATFT_JQUANTS_BASE_URL") or None,
            workers=int(os.environ.get("ATFT_JQUANTS_WORKERS", "1")),
        )
    if kind == "files":
        layout = DataLayout(root)
        return LandingFilesResource(
            landing_dir=str(layout.landing_dir), quarantine_dir=str(layout.quarantine_dir)
        )
    raise ValueError(f"ATFT_MARKET_SOURCE must be one of {SOURCES}, got {kind!r}")


def nightly_cron() -> str:
    from atft_dagster.defs.automation import DEFAULT_NIGHTLY_CRON

    return os.environ.get("ATFT_NIGHTLY_CRON", DEFAULT_NIGHTLY_CRON)
