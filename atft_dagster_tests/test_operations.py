"""The documented production instance config parses and keeps the project's guarantees."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_production_dagster_yaml_parses_and_limits_the_gpu_pool(tmp_path, monkeypatch):
    text = (REPO / "docs" / "dagster.production.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["concurrency"]["pools"]["default_limit"] == 1
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert (
        cfg["run_launcher"]["config"]["run_k8s_config"]["container_config"]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == 1
    )
    assert cfg["telemetry"]["enabled"] is False and cfg["run_monitoring"]["enabled"] is True
    (tmp_path / "dagster.yaml").write_text(text)
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "ATFT_IMAGE"):
        monkeypatch.setenv(var, "x")
    from dagster._core.instance.config import dagster_instance_config as parse  # what the daemon uses

    parsed, _ = parse(str(tmp_path))
    assert parsed["storage"]["postgres"]["postgres_db"]["port"] == 5432
