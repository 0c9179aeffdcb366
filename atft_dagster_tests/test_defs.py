"""The Dagster layer: definitions load, ingest materialises, re-runs are idempotent, writes are atomic."""

from __future__ import annotations

import tomllib
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from atft_dagster.definitions import build_definitions, defs
from atft_dagster.defs import io_manager as io_mod
from atft_dagster.defs.partitions import trading_days_partitions
from atft_dagster.defs.resources import LandingFilesResource, SyntheticMarketResource
from atft_dagster.landing import land_days
from atft_dagster.panel import missing_stock_days
from atft_dagster.sources import SyntheticSource

REPO = Path(__file__).resolve().parents[1]
SMALL = SyntheticMarketResource(n_stocks=30, n_days=40)


def _keys(first: int, last: int) -> tuple[str, str]:
    keys = trading_days_partitions.get_partition_keys()
    return keys[first], keys[last]


def _ingest(d: dg.Definitions, first: int, last: int, instance=None) -> dg.ExecuteInProcessResult:
    start, end = _keys(first, last)
    return d.resolve_job_def("ingest").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        raise_on_error=False,
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {"ingest", "synthetic_truth"} <= {j.name for j in repo.get_all_jobs()}
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        assert node.description, f"{key} has no description"


def test_loading_the_jobs_warns_about_nothing(tmp_path):
    """E.g. no "varying BackfillPolicies" warning for `nightly`, no deprecated job argument."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jobs = build_definitions(tmp_path, SyntheticMarketResource()).get_repository_def().get_all_jobs()
    ours = [str(w.message) for w in caught if not issubclass(w.category, dg.BetaWarning)]
    assert not ours, ours
    assert {"ingest", "retrain", "nightly"} <= {j.name for j in jobs}


def test_every_asset_and_check_in_defs_is_loaded():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"raw_daily_quotes", "enriched_features", "model_checkpoint", "daily_predictions"} <= keys
    assert len(keys) == 14 and len(list(repo.asset_graph.asset_check_keys)) == 3
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        assert node.owners == ["team:quant-research"] and len(node.code_version or "") == 12, key


def test_project_config_files_agree():
    dy = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert dy["run_coordinator"]["class"] == "ValidatingRunCoordinator"
    assert dy["concurrency"]["pools"]["default_limit"] == 1
    assert dy["run_monitoring"]["enabled"] is True and dy["telemetry"]["enabled"] is False
    ws = yaml.safe_load((REPO / "workspace.yaml").read_text())
    dg_cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert (
        ws["load_from"][0]["python_module"]["module_name"]
        == dg_cfg["code_location_target_module"]
        == "atft_dagster.definitions"
    )
    # one code-location name: the UI started by ./run ui loads the workspace file, which names it as dg does
    assert ws["load_from"][0]["python_module"]["location_name"] == dg_cfg["code_location_name"]
    ui = next(line for line in (REPO / "run").read_text().splitlines() if line.strip().startswith("ui)"))
    assert "dagster dev -w workspace.yaml" in ui and " -m " not in ui


def test_instance_from_repo_dagster_yaml(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(
        (REPO / "dagster.yaml").read_text()
    )  # a copy: never write the repo's
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        from dagster._core.run_coordinator import QueuedRunCoordinator

        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)  # ours, validating at launch
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert Path(instance.storage_directory()).is_relative_to(tmp_path)


def test_ingest_single_run_backfill_and_panel(tmp_path):
    d = build_definitions(tmp_path, SMALL)
    result = _ingest(d, 0, 39)
    assert result.success
    starts = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_START" and e.step_key == "raw_daily_quotes"
    ]
    assert len(starts) == 1, "a range is one step"
    tables = tmp_path / "tables"
    assert len(list((tables / "raw_daily_quotes").glob("*.parquet"))) == 40
    assert not list(tables.rglob("*.tmp")), "no temporary files left behind"
    panel = pl.read_parquet(tables / "market_panel.parquet")
    src = SMALL.source()
    days = src.history_days()
    assert panel.height == src.daily_quotes(days[0], days[39]).height
    assert panel["sector33_code"].null_count() == 0
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    mats = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["market_panel"]]
    md = mats[0].materialization.metadata
    assert md["dagster/row_count"].value == panel.height
    assert md["trading_days"].value == 40
    assert {c.name for c in md["dagster/column_schema"].schema.columns} == set(panel.columns)
    expected_gaps = int(missing_stock_days(panel, src.calendar(days[0], days[39]))["missing_days"].sum())
    assert md["no_trade_stock_days"].value == expected_gaps


def test_rematerialising_is_idempotent(tmp_path):
    d = build_definitions(tmp_path, SMALL)
    assert _ingest(d, 0, 19).success
    first = _files(tmp_path / "tables")
    assert _ingest(d, 0, 19).success
    assert _files(tmp_path / "tables") == first
    assert _ingest(d, 7, 7).success  # one partition again
    assert _files(tmp_path / "tables") == first


def test_panel_refuses_a_gap(tmp_path):
    d = build_definitions(tmp_path, SMALL)
    inst = dg.DagsterInstance.ephemeral()
    assert _ingest(d, 0, 4, inst).success
    result = _ingest(d, 8, 10, inst)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "market_panel")
    assert "missing trading day" in failure.event_specific_data.error.to_string()


def test_a_deleted_partition_file_fails_the_panel_naming_it(tmp_path):
    """The last raw partition's file is deleted after its ingest: the panel must not silently end a day early."""
    d = build_definitions(tmp_path, SMALL)
    inst = dg.DagsterInstance.ephemeral()
    assert _ingest(d, 0, 9, inst).success
    last = _keys(9, 9)[0]
    (tmp_path / "tables" / "raw_daily_quotes" / f"{last}.parquet").unlink()
    result = d.resolve_job_def("ingest").execute_in_process(
        instance=inst, partition_key=_keys(0, 0)[0], raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "market_panel")
    msg = failure.event_specific_data.error.to_string()
    assert "materialised but their files are gone" in msg and last in msg


def test_swapping_the_source_resource_to_landing_files(tmp_path):
    syn = SMALL.source()
    days = syn.history_days()[:5]
    land_days(syn, tmp_path / "landing", days)
    files = LandingFilesResource(landing_dir=str(tmp_path / "landing"))
    d = build_definitions(tmp_path, files)
    assert _ingest(d, 0, 4).success
    got = pl.read_parquet(tmp_path / "tables" / "market_panel.parquet")
    expected = syn.daily_quotes(days[0], days[-1])
    assert got.select("date", "code", "close").equals(expected.select("date", "code", "close"))


def test_ground_truth_needs_the_synthetic_source(tmp_path):
    d = build_definitions(tmp_path, LandingFilesResource(landing_dir=str(tmp_path)))
    result = d.resolve_job_def("synthetic_truth").execute_in_process(raise_on_error=False)
    assert not result.success
    msg = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.to_string()
    assert "only for the synthetic market" in msg


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    io_mod.write_parquet_atomic(pl.DataFrame({"a": [1]}), path)
    before = path.read_bytes()

    def broken(self, file, **kwargs):
        Path(file).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        io_mod.write_parquet_atomic(pl.DataFrame({"a": [2]}), path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_source_for_the_synthetic_resource_is_configured():
    cfg = SyntheticMarketResource(seed=11, n_stocks=40, peer_lead_lag=0.0).market_config()
    assert (cfg.seed, cfg.n_stocks, cfg.effects.peer_lead_lag) == (11, 40, 0.0)
    assert isinstance(SyntheticMarketResource().source(), SyntheticSource)


def test_market_preset_is_selectable_in_the_resource_and_environment(monkeypatch):
    from atft_dagster.defs.resources import SyntheticMarketResource
    from atft_dagster.defs.settings import market_source_resource
    from atft_dagster.market import market_preset

    real = SyntheticMarketResource(preset="realistic", n_stocks=50)
    assert real.market_config() == market_preset("realistic", n_stocks=50)
    assert real.market_config().dynamics.signal_factor_vol > 0
    tuned = SyntheticMarketResource(preset="realistic", momentum=0.5).market_config()
    assert (
        tuned.effects.momentum == 0.5
        and tuned.effects.reversal == market_preset("realistic").effects.reversal
    )
    assert SyntheticMarketResource().market_config() == market_preset("demo")
    monkeypatch.setenv("ATFT_MARKET_PRESET", "realistic")
    assert market_source_resource("synthetic").preset == "realistic"
