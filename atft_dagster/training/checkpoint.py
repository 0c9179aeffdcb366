"""Checkpoints: state_dict, the full resolved config, the feature-manifest hash, the graph config and the
split. Written atomically; loaded with ``weights_only=True``; best plus the last N kept."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import torch

BEST = "best.pt"
LAST = "last.pt"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def epoch_path(folder: Path, epoch: int) -> Path:
    return folder / f"epoch_{epoch:04d}.pt"


def retain(folder: Path, keep_last: int) -> list[Path]:
    """Delete epoch checkpoints beyond the last ``keep_last`` (best.pt and last.pt are separate files)."""
    epochs = sorted(folder.glob("epoch_*.pt"))
    doomed = epochs[:-keep_last] if keep_last else epochs
    for p in doomed:
        p.unlink()
    return doomed
