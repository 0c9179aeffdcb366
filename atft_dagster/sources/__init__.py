"""Market-data sources (pure core): synthetic, J-Quants API v2, landing files."""

from atft_dagster.sources.base import MarketSource
from atft_dagster.sources.files import FileRejected, LandingFileSource
from atft_dagster.sources.jquants import JQuantsSource
from atft_dagster.sources.schema import DataValidationError
from atft_dagster.sources.synthetic import SyntheticSource

__all__ = [
    "DataValidationError",
    "FileRejected",
    "JQuantsSource",
    "LandingFileSource",
    "MarketSource",
    "SyntheticSource",
]
