"""The ATFT-GAT-FAN model and its loss (pure core)."""

from atft_dagster.model.atft import ATFTGATFAN, ModelOutput
from atft_dagster.model.config import TrainingConfig
from atft_dagster.model.loss import MultiHorizonLoss

__all__ = ["ATFTGATFAN", "ModelOutput", "MultiHorizonLoss", "TrainingConfig"]
