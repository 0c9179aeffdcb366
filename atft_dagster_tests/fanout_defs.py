"""The `train` job over a test's data folder (``$ATFT_DATA_DIR``) and small market, reconstructable in the
step processes of the multiprocess executor."""

import os
from pathlib import Path

import dagster as dg

from atft_dagster.definitions import build_definitions
from atft_dagster_tests.helpers import SMALL


def train_job() -> dg.JobDefinition:
    return build_definitions(Path(os.environ["ATFT_DATA_DIR"]), SMALL).resolve_job_def("train")
