"""Seed x fold training as parallel Dagster steps: the multiprocess executor runs one step per member,
at most as many at once as the instance's `gpu` pool allows; the production executor's limits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from atft_dagster.definitions import build_definitions
from atft_dagster.pipeline.records import TrainedModel
from atft_dagster_tests import fanout_defs
from atft_dagster_tests.helpers import SMALL, TINY, ingest, tracking

REPO = Path(__file__).resolve().parents[1]


def _instance(home: Path, gpu_slots: int) -> dg.DagsterInstance:
    """The repo's local instance config with the `gpu` pool at ``gpu_slots``."""
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    cfg["concurrency"]["pools"]["default_limit"] = gpu_slots
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    return dg.DagsterInstance.from_config(str(home))


def _intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[float]]:
    """Per step key: [start, end] timestamps of its execution."""
    spans: dict[str, list[float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            spans[event.step_key] = [record.timestamp, float("inf")]
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            spans[event.step_key][1] = record.timestamp
    return spans


def _most_at_once(spans: list[list[float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])  # an end sorts before a start
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


TWO_FOLDS = {**TINY, "n_folds": 2, "val_days": 15, "selection_days": 15, "test_days": 15}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A data folder with features and graph of the small market."""
    root = tmp_path_factory.mktemp("fanout") / "data"
    d, prep = build_definitions(root, SMALL), dg.DagsterInstance.ephemeral()
    assert ingest(d, prep).success
    assert d.resolve_job_def("prepare").execute_in_process(instance=prep).success
    return root


@pytest.fixture
def env(prepared, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ATFT_DATA_DIR", str(prepared))  # the step processes build the same definitions
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # the repo's config stores under it
    shutil.rmtree(prepared / "models", ignore_errors=True)  # each test trains from scratch
    return prepared


def test_members_run_as_parallel_steps_bounded_by_the_gpu_pool(env, tmp_path):
    root = env
    instance = _instance(tmp_path / "home", gpu_slots=2)
    config = {**TWO_FOLDS, "ensemble_seeds": 2}
    run_config = {
        "ops": {"model_checkpoint": {"config": config}},
        "resources": {"torch_device": {"config": {"threads": 1}}},  # two steps share 2 cores
        # more processes than pool slots: the pool, not the executor, is what bounds the members
        "execution": {"config": {"multiprocess": {"max_concurrent": 4}}},
    }
    with dg.execute_job(dg.reconstructable(fanout_defs.train_job), instance, run_config=run_config) as result:
        assert result.success
        spans = _intervals(instance, result.run_id)

    members = {k: v for k, v in spans.items() if ".train_member[" in k}
    assert sorted(members) == [
        f"model_checkpoint.train_member[fold{f}_seed{s}]" for f in (0, 1) for s in (42, 43)
    ]
    assert _most_at_once(list(members.values())) == 2  # in parallel, never beyond the pool's 2 slots
    plan, register = spans["model_checkpoint.plan"], spans["model_checkpoint.register"]
    assert plan[1] <= min(s for s, _ in members.values())
    assert register[0] >= max(e for _, e in members.values())
    model = TrainedModel.from_json((root / "tables" / "model_checkpoint.json").read_text())
    assert sorted((m.fold, m.seed) for m in model.members) == [(0, 42), (0, 43), (1, 42), (1, 43)]
    assert model.run_id == result.run_id and len({m.checkpoint for m in model.members}) == 4
    # the step outputs live per run, so a re-execution from failure finds its parent's plan
    assert (root / "tables" / "_steps" / result.run_id / "model_checkpoint.plan.plan.json").exists()


def test_a_failed_member_is_re_executed_alone(env, tmp_path):
    """Re-execution from failure runs only the failed members: the plan and the members that finished are
    read from the parent runs' step outputs."""
    root, models = env, env / "models"
    instance = _instance(tmp_path / "home", gpu_slots=1)
    job = dg.reconstructable(fanout_defs.train_job)
    run_config = {
        "ops": {"model_checkpoint": {"config": {**TWO_FOLDS, "ensemble_seeds": 1}}},
        "execution": {"config": {"in_process": {}}},
    }

    def run(parent: str | None = None) -> tuple[bool, str, set[str]]:
        options = dg.ReexecutionOptions.from_failure(parent, instance) if parent else None
        with dg.execute_job(
            job, instance, run_config=run_config, reexecution_options=options, raise_on_error=False
        ) as res:
            return res.success, res.run_id, set(_intervals(instance, res.run_id))

    models.write_text("not a folder")  # every member fails to make its checkpoint folder
    ok, first, steps = run()
    assert not ok and "model_checkpoint.plan" in steps
    planned = json.loads((root / "tables" / "_steps" / first / "model_checkpoint.plan.plan.json").read_text())
    models.unlink()
    (models / planned["value"]["training_key"]).mkdir(parents=True)
    (models / planned["value"]["training_key"] / "fold_1").write_text("")  # now only fold 1 fails
    ok, second, steps = run(first)
    assert not ok and "model_checkpoint.plan" not in steps  # the plan is the first run's
    (models / planned["value"]["training_key"] / "fold_1").unlink()
    ok, third, steps = run(second)
    assert ok
    assert steps == {"model_checkpoint.train_member[fold1_seed42]", "model_checkpoint.register"}
    model = TrainedModel.from_json((root / "tables" / "model_checkpoint.json").read_text())
    assert sorted((m.fold, m.seed) for m in model.members) == [(0, 42), (1, 42)]
    assert model.run_id == first  # the run that planned the training names it
    # one MLflow run holds the whole training: every member's epochs and the registered version
    t = tracking(root)
    client = t.client()
    exp = client.get_experiment_by_name(t.experiment_name).experiment_id
    (mlrun,) = client.search_runs([exp], filter_string=f"tags.dagster_run_id = '{first}'")
    assert {"val_rank_ic_1d", "fold1_seed0_val_rank_ic_1d"} <= set(mlrun.data.metrics), set(
        mlrun.data.metrics
    )
    assert client.get_model_version("atft_gat_fan", model.mlflow_model_version).run_id == mlrun.info.run_id


def test_the_production_executor_gives_each_member_a_gpu_pod_within_the_limits(monkeypatch):
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    from atft_dagster.defs.executors import GPU_STEP_TAG, K8S_EXECUTOR_CONFIG, executor_for
    from atft_dagster.defs.model_assets import model_checkpoint

    monkeypatch.setenv("ATFT_IMAGE", "registry.example/atft:1")
    checked = process_config(k8s_job_executor.config_schema.config_type, K8S_EXECUTOR_CONFIG)
    assert checked.success, checked.errors
    limits = {t["key"]: t["limit"] for t in checked.value["tag_concurrency_limits"]}
    assert limits == {GPU_STEP_TAG: 4} and checked.value["max_concurrent"] == 8
    assert checked.value["job_image"] == "registry.example/atft:1"
    assert "nvidia.com/gpu" not in str(checked.value["step_k8s_config"])  # other steps stay on CPU

    nodes = {n.name: n.definition for n in model_checkpoint.node_def.nodes}
    member = nodes["train_member"]
    assert member.tags[GPU_STEP_TAG] == "true" and member.pool == "gpu"
    pod = member.tags["dagster-k8s/config"]
    pod = yaml.safe_load(pod) if isinstance(pod, str) else pod
    assert pod["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert all(GPU_STEP_TAG not in nodes[n].tags for n in ("plan", "register"))

    job = build_definitions(Path("/tmp/unused"), SMALL, executor="k8s").resolve_job_def("retrain")
    assert job.executor_def.name == "k8s_gpu_steps" and executor_for("multiprocess").name.startswith("multi")
    with pytest.raises(ValueError, match="unknown executor"):
        executor_for("celery")
