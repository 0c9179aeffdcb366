"""model_checkpoint in Dagster: GPU pool, config from the launchpad, MLflow run, manifest refusal."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import torch
from mlflow.tracking import MlflowClient

from atft_dagster.definitions import build_definitions
from atft_dagster.defs.model_assets import REGISTERED_MODEL, TorchDevice, model_checkpoint
from atft_dagster.graph import GraphConfig
from atft_dagster.pipeline.records import TrainedModel
from atft_dagster.training.checkpoint import load_checkpoint
from atft_dagster_tests.helpers import SMALL, TINY, ingest


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    d = build_definitions(root, SMALL)
    inst = dg.DagsterInstance.ephemeral()
    assert ingest(d, inst).success
    assert d.resolve_job_def("prepare").execute_in_process(instance=inst).success
    return root, d, inst


def _trained(root) -> TrainedModel:
    return TrainedModel.from_json((root / "tables" / "model_checkpoint.json").read_text())


def _train(d, inst, **overrides):
    cfg = {"ops": {"model_checkpoint": {"config": {**TINY, **overrides}}}}
    return d.resolve_job_def("train").execute_in_process(instance=inst, run_config=cfg, raise_on_error=False)


def test_training_steps_run_in_the_gpu_pool():
    pools = {node.name: node.definition.pool for node in model_checkpoint.node_def.nodes}
    assert pools == {"plan": None, "train_member": "gpu", "register": None}


def test_train_job_checkpoints_and_tracks(prepared):
    root, d, inst = prepared
    res = _train(d, inst)
    assert res.success
    out = _trained(root)
    ck = load_checkpoint(root / out.members[0].checkpoint)
    assert ck["config"]["hidden"] == 16 and ck["meta"]["dagster_run_id"] == res.run_id
    assert not out.members[0].checkpoint.startswith("/")  # relative to the data directory
    assert (
        ck["meta"]["graph_config"]["top_k"] == GraphConfig().top_k
    )  # the graph's config, from its materialisation
    md = next(e for e in res.get_asset_materialization_events()).materialization.metadata
    for key in (
        "parameters",
        "epochs_run",
        "best_val_rank_ic_primary",
        "val_rank_ic",
        "seconds_per_epoch",
        "samples_per_second",
        "device",
        "mlflow_run",
    ):
        assert key in md, key
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("atft_dagster")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.dagster_run_id = '{res.run_id}'")
    assert len(runs) == 1 and runs[0].data.params["hidden"] == "16" and runs[0].info.status == "FINISHED"
    assert "val_rank_ic_1d" in runs[0].data.metrics
    assert exp.artifact_location.startswith((root / "mlartifacts").resolve().as_uri())
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    assert any(v.run_id == runs[0].info.run_id for v in versions)


def test_config_hidden_reaches_the_model(prepared):
    root, d, inst = prepared
    assert _train(d, inst, hidden=32).success
    out = _trained(root)
    small = load_checkpoint(root / out.members[0].checkpoint)
    assert small["config"]["hidden"] == 32
    assert out.members[0].n_parameters > 0 and out.config["hidden"] == 32


def test_folds_and_ensemble_seeds_are_honoured(prepared):
    root, d, inst = prepared
    res = _train(d, inst, n_folds=2, ensemble_seeds=2, epochs=1)
    assert res.success
    out = _trained(root)
    assert sorted((m.fold, m.seed) for m in out.members) == [(0, 42), (0, 43), (1, 42), (1, 43)]
    seeds = {load_checkpoint(root / m.checkpoint)["config"]["seed"] for m in out.members}
    assert seeds == {42, 43} and len({m.checkpoint for m in out.members}) == 4
    folds = sorted(out.folds, key=lambda f: f.fold)
    assert folds[1].test[1] < folds[0].selection[0]  # fold 1's test ends before fold 0 selects


def test_a_dataset_with_another_manifest_is_refused(prepared):
    root, d, inst = prepared
    path = root / "tables" / "enriched_features.manifest.json"
    original = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(original), "hash": "0" * 64}))
        res = _train(d, inst)
        assert not res.success
        msg = next(e for e in res.all_events if e.is_step_failure).event_specific_data.error.to_string()
        assert "ManifestMismatch" in msg and "rebuild" in msg
    finally:
        path.write_text(original)


def test_torch_device_resource():
    dev = TorchDevice(device="cpu", threads=1)
    assert dev.resolve().type == "cpu" and "cpu" in dev.describe(dev.resolve())
    assert TorchDevice().resolve().type in ("cpu", "cuda")


@pytest.mark.parametrize("native", [True, False])
def test_torch_device_says_when_cpu_bf16_is_emulated(native, monkeypatch):
    from atft_dagster.defs import model_assets

    monkeypatch.setattr(model_assets, "native_cpu_bf16", lambda: native)
    cpu = torch.device("cpu")
    said = TorchDevice(device="cpu", precision="bf16").describe(cpu)
    assert "bf16" in said and ("emulated" in said) != native
    assert "fp32" in TorchDevice(device="cpu").describe(cpu)


@pytest.mark.parametrize("keep", [True, False])
def test_torch_device_keeps_freed_memory_on_the_cpu_when_set(keep, monkeypatch):
    from atft_dagster.defs import model_assets

    calls = []
    monkeypatch.setattr(model_assets, "keep_freed_memory", lambda: calls.append(1))
    TorchDevice(device="cpu", keep_freed_memory=keep).resolve()
    assert calls == ([1] if keep else [])


KILLED_AFTER_EPOCH_1 = """
import json, os, signal, sys
from pathlib import Path
import dagster as dg
from atft_dagster.definitions import build_definitions
from atft_dagster.defs import model_assets
from atft_dagster_tests.helpers import SMALL

real = model_assets._log_epoch

def killed(context, split, member, cfg, log):
    real(context, split, member, cfg, log)
    if log.epoch == 1:  # epoch 1 is checkpointed: the process dies here, no cleanup of any kind
        os.kill(os.getpid(), signal.SIGKILL)

model_assets._log_epoch = killed
defs = build_definitions(Path(sys.argv[1]), SMALL)
defs.resolve_job_def("train").execute_in_process(
    instance=dg.DagsterInstance.ephemeral(), run_config=json.loads(sys.argv[2])
)
"""


def test_a_run_killed_mid_training_resumes_when_run_again(prepared):
    """The training process is killed with SIGKILL right after epoch 1 was checkpointed; the next run of
    the same training (new run id, same config and data) starts at epoch 2 instead of from scratch."""
    import os
    import signal
    import subprocess
    import sys

    root, d, inst = prepared
    overrides = {"epochs": 3, "patience": 5, "ensemble_seeds": 1, "lr": 7e-4}
    config = {"ops": {"model_checkpoint": {"config": {**TINY, **overrides}}}}
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_EPOCH_1, str(root), json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list(root.glob("models/*/fold_0/seed_*/last.pt"))  # what the dead process left
    again = _train(d, inst, **overrides)
    assert again.success
    (member,) = _trained(root).members
    assert member.resumed_from_epoch == 1 and member.epochs_run == 3
    md = next(e for e in again.get_asset_materialization_events()).materialization.metadata
    assert md["resumed_from_epoch"].value == 1


def test_registration_chatter_stays_off_the_console(capsys):
    """MLflow prints 'Successfully registered model' and 'Created version' past its logger; the model step
    silences them (the run's own log says what was registered) and restores MLflow's output after."""
    from mlflow.utils.logging_utils import eprint

    from atft_dagster.defs.mlflow_resource import quiet_mlflow

    with pytest.raises(RuntimeError, match="still raises"), quiet_mlflow():
        eprint("Created version '1' of model 'atft_gat_fan'.")
        raise RuntimeError("an error still raises")
    eprint("MLflow speaks again")
    err = capsys.readouterr().err
    assert "Created version" not in err and "MLflow speaks again" in err
