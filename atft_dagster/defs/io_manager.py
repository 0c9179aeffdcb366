"""A small Parquet IO manager for polars (dagster-polars does not load under polars 2).

Unpartitioned assets live at ``<base>/<asset key>.parquet``; daily-partitioned ones at
``<base>/<asset key>/<YYYY-MM-DD>.parquet``. A single-run backfill returns one frame with a ``date``
column, split here into its partitions. A typed run record (:class:`atft_dagster.pipeline.records.Record`)
is stored as ``<base>/<asset key>.json`` and loaded back as the type the consuming asset annotates.
An op output inside a graph asset (the training's plan and members) is a record too, stored per run as
``<base>/_steps/<run id>/<step>.<output>[.<mapping key>].json`` with its type's name, so a step of any
process (multiprocess executor, a pod per step) reads it, and a re-execution from failure reads its parent
run's. Every write is atomic (temp file, then rename).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from atft_dagster.pipeline.records import Record, record_types
from atft_dagster.storage import write_parquet_atomic, write_text_atomic

PARTITION_COLUMN = "date"
STEPS_DIR = "_steps"


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str

    def _path(self, key: dg.AssetKey, partition: str | None = None) -> Path:
        root = Path(self.base_dir).joinpath(*key.path)
        return root / f"{partition}.parquet" if partition else root.with_suffix(".parquet")

    def _step_path(self, identifier: list[str]) -> Path:
        run_id, *names = identifier
        return Path(self.base_dir, STEPS_DIR, run_id, ".".join(names) + ".json")

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | Record | None) -> None:
        if obj is None:
            return
        if not context.has_asset_key:
            if not isinstance(obj, Record):
                raise TypeError(
                    f"step {context.step_key} returned {type(obj).__name__}, expected a run record"
                )
            path = self._step_path(context.get_identifier())
            write_text_atomic(
                json.dumps({"record": type(obj).__name__, "value": obj.model_dump(mode="json")}), path
            )
            return
        if isinstance(obj, Record) and not context.has_asset_partitions:
            path = self._path(context.asset_key).with_suffix(".json")
            write_text_atomic(obj.to_json(), path)
            context.add_output_metadata(
                {"record": type(obj).__name__, "path": dg.MetadataValue.path(str(path))}
            )
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, expected polars.DataFrame or a run record"
            )
        key = context.asset_key
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            pieces = {str(k[0]): df for k, df in obj.partition_by(PARTITION_COLUMN, as_dict=True).items()}
            extra = sorted(set(pieces) - set(keys))
            if extra:
                raise ValueError(
                    f"{key.to_user_string()}: rows for dates outside the requested partitions: {extra[:5]}"
                )
            empty = [k for k in keys if k not in pieces]
            if empty:
                raise ValueError(f"{key.to_user_string()}: no rows for partition(s) {empty[:5]}")
            size = sum(write_parquet_atomic(pieces[k], self._path(key, k)) for k in keys)
            path = self._path(key, keys[0]).parent
        else:
            path = self._path(key)
            size = write_parquet_atomic(obj, path)
        context.add_output_metadata(
            {
                # in a multi-partition run every partition's event carries the whole run's figures
                "dagster/row_count": dg.MetadataValue.int(obj.height),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in obj.schema.items()]
                ),
                "columns": dg.MetadataValue.int(obj.width),
                "bytes": dg.MetadataValue.int(size),
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | Record:
        if not context.has_asset_key:
            path = self._step_path(context.upstream_output.get_identifier())
            if not path.exists():
                raise FileNotFoundError(
                    f"the output of step {context.upstream_output.step_key} is gone ({path})"
                )
            stored = json.loads(path.read_text(encoding="utf-8"))
            return record_types()[stored["record"]].model_validate(stored["value"])
        key = context.asset_key
        wanted = context.dagster_type.typing_type
        if isinstance(wanted, type) and issubclass(wanted, Record):
            path = self._path(key).with_suffix(".json")
            if not path.exists():
                raise FileNotFoundError(f"{key.to_user_string()} has not been materialised ({path})")
            return wanted.from_json(path.read_text(encoding="utf-8"))
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            lost = sorted(p for p in _materialised(context, set(keys)) if not self._path(key, p).exists())
            if lost:
                raise FileNotFoundError(
                    f"{key.to_user_string()}: {len(lost)} partition(s) were materialised but their files are "
                    f"gone from {self._path(key, lost[0]).parent}: {lost[:5]}; materialise them again "
                    f"(e.g. atft ingest --start {lost[0]} --end {lost[-1]})"
                )
            paths = [self._path(key, p) for p in keys]
            present = [p for p in paths if p.exists()]
            if not present:
                raise FileNotFoundError(
                    f"no materialised partitions of {key.to_user_string()} under {paths[0].parent}"
                )
            # partitions never materialised (days after the last ingest) are absent; consumers check
            # the days they get against the trading calendar. A materialised one whose file was deleted
            # fails above.
            return pl.read_parquet(present)
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(f"{key.to_user_string()} has not been materialised ({path})")
        return pl.read_parquet(path)


def _materialised(context: dg.InputContext, keys: set[str]) -> set[str]:
    """The partitions among ``keys`` the instance has recorded a materialisation of (none without one)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return set()
    return instance.get_materialized_partitions(context.asset_key) & keys
