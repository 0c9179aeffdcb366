"""Temporary files of interrupted atomic writes are cleaned at the start of a run; nothing else is."""

from __future__ import annotations

import os
import time

import dagster as dg
import polars as pl

from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.storage import _tmp, remove_stale_temp_files, write_parquet_atomic


def _aged(path, hours: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    then = time.time() - hours * 3600
    os.utime(path, (then, then))
    return path


def test_only_old_temporary_files_of_our_writers_are_removed(tmp_path):
    table = tmp_path / "tables" / "raw" / "2024-01-04.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), table)
    orphan = _aged(_tmp(tmp_path / "models" / "run" / "best.pt"), hours=7)
    fresh = _aged(_tmp(tmp_path / "tables" / "x.parquet"), hours=0.1)  # a writer may still own it
    foreign = _aged(tmp_path / "notes" / ".mine.tmp", hours=50)  # not our naming: never touched
    removed = remove_stale_temp_files(tmp_path, older_than_s=6 * 3600)
    assert removed == [orphan] and not orphan.exists()
    assert fresh.exists() and foreign.exists() and table.exists()
    assert remove_stale_temp_files(tmp_path / "missing", 1.0) == []


def test_a_run_start_cleans_the_data_directory(tmp_path):
    orphan = _aged(_tmp(tmp_path / "tables" / "big.parquet"), hours=10)
    young = _aged(_tmp(tmp_path / "tables" / "other.parquet"), hours=1)

    @dg.asset
    def touch(paths: ProjectPaths) -> None:
        assert not orphan.exists()

    result = dg.materialize([touch], resources={"paths": ProjectPaths(data_dir=str(tmp_path))})
    assert result.success and young.exists()
    short = ProjectPaths(data_dir=str(tmp_path), stale_temp_hours=0.5)
    short.setup_for_execution(dg.build_init_resource_context())
    assert not young.exists()
