"""atft_dagster: daily Japanese-equity rankings with ATFT-GAT-FAN, orchestrated by Dagster.

The packages below this one are the pure core (no Dagster import); ``atft_dagster.defs`` and
``atft_dagster.definitions`` are the Dagster layer.
"""

__version__ = "0.1.0"
