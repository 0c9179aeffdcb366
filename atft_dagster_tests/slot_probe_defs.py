"""A code location for the run-monitoring test: one long step in the `gpu` pool that watches its run worker
as the training does, and records its pid (in ``$ATFT_PROBE_DIR``) so the test can find it."""

import os
import time
from pathlib import Path

import dagster as dg

from atft_dagster.defs.worker_watch import stop_if_run_worker_dies


@dg.asset(pool="gpu")
def probe_training(context: dg.AssetExecutionContext) -> None:
    with stop_if_run_worker_dies(context.log.error, poll_s=0.2, grace_s=5):
        (Path(os.environ["ATFT_PROBE_DIR"]) / f"{context.run_id}.pid").write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)


defs = dg.Definitions(
    assets=[probe_training], jobs=[dg.define_asset_job("slot_probe", selection=[probe_training])]
)
