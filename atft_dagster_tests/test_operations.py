"""The documented production instance config parses and keeps the project's guarantees."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_production_dagster_yaml_parses_and_limits_the_gpu_pool(tmp_path, monkeypatch):
    text = (REPO / "docs" / "dagster.production.yaml").read_text()
    cfg = yaml.safe_load(text)
    # member trainings of all runs share the GPU node pool's GPUs, one step per slot
    assert cfg["concurrency"]["pools"] == {"default_limit": 4, "granularity": "op"}
    assert cfg["run_coordinator"]["class"] == "ValidatingRunCoordinator"
    # the run pod only orchestrates: the training steps' pods ask for the GPUs (executors.py)
    run_pod = cfg["run_launcher"]["config"]["run_k8s_config"]["container_config"]["resources"]
    assert "nvidia.com/gpu" not in str(run_pod)
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher  # the `k8s` extra

    monkeypatch.setenv("ATFT_IMAGE", "registry.example/atft:1")
    launcher = process_config(K8sRunLauncher.config_type(), cfg["run_launcher"]["config"])
    assert launcher.success, launcher.errors  # the launcher's own schema accepts it
    assert cfg["telemetry"]["enabled"] is False and cfg["run_monitoring"]["enabled"] is True
    (tmp_path / "dagster.yaml").write_text(text)
    monkeypatch.setenv("ATFT_IMAGE", "x")
    from dagster._core.instance.config import dagster_instance_config as parse  # what the daemon uses

    parsed, _ = parse(str(tmp_path))
    assert parsed["storage"]["postgres"]["postgres_url"] == {"env": "ATFT_DATABASE_URL"}  # the one URL
    assert parsed["run_monitoring"]["free_slots_after_run_end_seconds"] > 0


def test_the_local_instance_frees_pool_slots_of_ended_runs(tmp_path):
    from dagster._core.instance.config import dagster_instance_config as parse

    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    parsed, _ = parse(str(tmp_path))
    monitoring = parsed["run_monitoring"]
    assert monitoring["enabled"] and monitoring["free_slots_after_run_end_seconds"] > 0
    assert monitoring["max_runtime_seconds"] > 0


def test_descriptions_render_and_the_failure_sensor_is_on(tmp_path):
    """The UI renders descriptions as Markdown: an angle-bracket placeholder would vanish as an HTML tag."""
    import re

    import dagster as dg

    from atft_dagster.definitions import build_definitions
    from atft_dagster_tests.helpers import SMALL

    repo = build_definitions(tmp_path, SMALL).get_repository_def()
    texts = [a.descriptions_by_key.get(k) or "" for a in repo.assets_defs_by_key.values() for k in a.keys]
    texts += [j.description or "" for j in repo.get_all_jobs()]
    texts += [s.description or "" for s in repo.sensor_defs]
    assert texts and not [t for t in texts if re.search(r"<[A-Za-z][^>]*>", t)]
    sensors = {s.name: s.default_status for s in repo.sensor_defs}
    assert sensors["ops_failure_sensor"] == dg.DefaultSensorStatus.RUNNING
    assert sensors["landing_sensor"] == dg.DefaultSensorStatus.STOPPED  # starting ingests stays opt-in


BAD_CONFIGS = [
    ({"model_checkpoint": {"epochs": -1}}, "ops.model_checkpoint.config.epochs: Input should be greater"),
    ({"model_checkpoint": {"primary_horizon": 3}}, "primary_horizon must be one of horizons"),
    ({"model_checkpoint": {"hidden": 30, "attn_heads": 4}}, "hidden must be divisible by attn_heads"),
    ({"enriched_features": {"horizons": [1, 5]}}, "[10, 20] have no target in ops.enriched_features"),
]


def test_bad_config_is_refused_at_launch(tmp_path, monkeypatch):
    """The instance's run coordinator builds every asset config when a run is submitted: a bad one fails the
    run before any step, naming the field, and nothing is written; a good one is queued."""
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

    from atft_dagster.definitions import build_definitions
    from atft_dagster_tests.helpers import SMALL

    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    data = tmp_path / "data"
    job = build_definitions(data, SMALL).resolve_job_def("retrain")
    with dg.DagsterInstance.get() as instance:
        for ops, message in BAD_CONFIGS:
            config = {"ops": {name: {"config": c} for name, c in ops.items()}}
            run = instance.create_run_for_job(job, run_config=config)
            run = instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
            assert run.status == dg.DagsterRunStatus.FAILURE, ops
            logged = " ".join(e.message or "" for e in instance.all_logs(run.run_id))
            assert "refused at launch" in logged and message in logged, logged
        queued = []  # a good run goes on to the queue (the queue itself needs a code-location origin)
        monkeypatch.setattr(
            QueuedRunCoordinator, "submit_run", lambda self, ctx: queued.append(ctx) or "queued"
        )
        good = instance.create_run_for_job(
            job, run_config={"ops": {"model_checkpoint": {"config": {"epochs": 2}}}}
        )
        assert instance.run_coordinator.submit_run(SubmitRunContext(good, workspace=None)) == "queued"
        assert (
            len(queued) == 1 and instance.get_run_by_id(good.run_id).status == dg.DagsterRunStatus.NOT_STARTED
        )
    assert not (data / "tables").exists() or not any((data / "tables").iterdir())


def test_the_postgres_instance_config_differs_only_in_storage(tmp_path):
    """./run links dagster.postgres.yaml when ATFT_DATABASE_URL is set: the same queue, pool, monitoring and
    launch validation, with the storage on that URL."""
    from dagster._core.instance.config import dagster_instance_config as parse

    sqlite = yaml.safe_load((REPO / "dagster.yaml").read_text())
    postgres = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    assert {k: v for k, v in sqlite.items() if k != "storage"} == {
        k: v for k, v in postgres.items() if k != "storage"
    }
    assert postgres["storage"] == {"postgres": {"postgres_url": {"env": "ATFT_DATABASE_URL"}}}
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.postgres.yaml").read_text())
    parsed, _ = parse(str(tmp_path))  # valid for the daemon and the webserver
    assert parsed["storage"]["postgres"]["postgres_url"] == {"env": "ATFT_DATABASE_URL"}
    run = (REPO / "run").read_text()
    assert "dagster.postgres.yaml" in run and "ATFT_DATABASE_URL" in run


def test_one_database_url_names_the_driver_for_both_stores(monkeypatch):
    from atft_dagster.defs.mlflow_resource import postgres_tracking_uri
    from atft_dagster.defs.settings import database_url

    monkeypatch.setenv("ATFT_DATABASE_URL", "postgresql://u:p@db:5432/atft")
    url = database_url()
    assert url == "postgresql+psycopg2://u:p@db:5432/atft"
    assert postgres_tracking_uri(url) == url + "?options=-csearch_path%3Dmlflow"
    monkeypatch.setenv("ATFT_DATABASE_URL", "mysql://u@db/atft")
    import pytest

    with pytest.raises(ValueError, match="must be a postgresql:// URL"):
        database_url()
    monkeypatch.delenv("ATFT_DATABASE_URL")
    assert database_url() is None
