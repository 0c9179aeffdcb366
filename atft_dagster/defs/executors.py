"""Where a run's steps execute. Locally (the default) every step is a process of the run's pod or machine:
the multiprocess executor, the member trainings bounded by the instance's `gpu` pool. On Kubernetes
(``ATFT_EXECUTOR=k8s``) every step is a pod of its own; the member trainings ask for one GPU each through
their op tag, and the other steps stay on CPU nodes."""

from __future__ import annotations

from typing import Any

import dagster as dg

EXECUTORS = ("multiprocess", "k8s")

# Tag of the steps that train a model member; the Kubernetes executor limits them per run with it.
GPU_STEP_TAG = "atft/gpu-step"

# The pod of a member training step: one GPU on a tainted GPU node pool.
GPU_STEP_K8S_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {
            "limits": {"nvidia.com/gpu": 1, "memory": "32Gi"},
            "requests": {"cpu": "4", "memory": "16Gi"},
        }
    },
    "pod_spec_config": {
        "node_selector": {"atft/node-pool": "gpu"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
        ],
    },
}

# Every other step's pod (features, graph, evaluation, registration): CPU only.
K8S_EXECUTOR_CONFIG: dict[str, Any] = {
    "job_image": {"env": "ATFT_IMAGE"},
    "service_account_name": "dagster",
    "env_config_maps": ["atft-env"],
    "env_secrets": ["jquants-api-key"],
    "max_concurrent": 8,  # step pods of one run at once
    # member trainings of one run at once; across runs the instance's `gpu` pool is the bound
    "tag_concurrency_limits": [{"key": GPU_STEP_TAG, "limit": 4}],
    "step_k8s_config": {
        "container_config": {
            "resources": {"limits": {"memory": "16Gi"}, "requests": {"cpu": "2", "memory": "8Gi"}}
        }
    },
}


def gpu_step_tags() -> dict[str, Any]:
    """The tags of a member training op: the per-run limit's tag and, for the Kubernetes executor, its pod."""
    return {GPU_STEP_TAG: "true", "dagster-k8s/config": GPU_STEP_K8S_CONFIG}


# What a local step process imports before it forks: torch, MLflow, Dagster and the code location take
# ~14 s to import on 2 cores, paid once per run instead of once per step.
PRELOAD_MODULES = ["atft_dagster.definitions"]


def _preloaded_step_processes(config: dict[str, Any] | None) -> dict[str, Any]:
    """Dagster's multiprocess config, its steps forked from one preloaded server unless the run says
    otherwise (``execution.config.multiprocess.start_method``)."""
    config = config or {"multiprocess": {}}
    if "multiprocess" not in config:
        return config  # in_process
    forkserver = {"forkserver": {"preload_modules": PRELOAD_MODULES}}
    return {"multiprocess": {"start_method": forkserver, **config["multiprocess"]}}


def executor_for(name: str) -> dg.ExecutorDefinition:
    """The executor a deployment names (``ATFT_EXECUTOR``)."""
    if name == "multiprocess":
        # the same run config as Dagster's default executor; materialize() and the CLI's
        # execute_in_process still run in process
        base = dg.multi_or_in_process_executor
        schema = dg.Field(
            base.config_schema.config_type, is_required=False, default_value={"multiprocess": {}}
        )
        return base.configured(_preloaded_step_processes, name="multiprocess", config_schema=schema)
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the `k8s` extra

        return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG, name="k8s_gpu_steps")
    raise ValueError(f"unknown executor {name!r}: one of {', '.join(EXECUTORS)}")
