"""Atomic writes: write to a temporary file beside the target (``.<name>.<32 hex>.tmp``), then rename; and
the clean-up of temporary files that a killed process left behind."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def remove_stale_temp_files(root: Path, older_than_s: float, now: float | None = None) -> list[Path]:
    """Delete the atomic writers' temporary files under ``root`` last modified more than ``older_than_s``
    ago (a live writer's file is younger; other files are never touched). Returns what was deleted."""
    now = time.time() if now is None else now
    removed = []
    if not root.exists():
        return removed
    for p in root.rglob(".*.tmp"):
        try:
            if TEMP_NAME.match(p.name) and p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:  # another process removed or renamed it meanwhile
            continue
    return removed


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> int:
    """Write ``df`` to ``path`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(obj: Any, path: Path) -> None:
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True, default=str), path)
