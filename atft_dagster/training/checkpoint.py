"""Checkpoints: state_dict, the full resolved config, the feature-manifest hash, the graph config and the
split. Written atomically; loaded with ``weights_only=True``; best plus the last N kept.

Each checkpoint carries a SHA-256 of its content (every tensor's bytes, dtype and shape, and every other
value), checked at load: a damaged file raises ``CheckpointError`` naming its path instead of loading
silently changed weights. Files written before the checksum existed load unchecked."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import torch

BEST = "best.pt"
LAST = "last.pt"
DIGEST = "sha256"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or whose content does not match its checksum."""


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())


def content_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint payload's content (independent of how torch lays out the file)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST})
    return h.hexdigest()


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save({**payload, DIGEST: content_digest(payload)}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload of ``path``, its checksum verified (and removed)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises EOFError, RuntimeError, UnpicklingError, zip errors ...
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a checkpoint")
    expected = payload.pop(DIGEST, None)
    if expected is not None and content_digest(payload) != expected:
        raise CheckpointError(f"checkpoint {path} is damaged: its content does not match its SHA-256")
    return payload


def epoch_path(folder: Path, epoch: int) -> Path:
    return folder / f"epoch_{epoch:04d}.pt"


def retain(folder: Path, keep_last: int) -> list[Path]:
    """Delete epoch checkpoints beyond the last ``keep_last`` (best.pt and last.pt are separate files)."""
    epochs = sorted(folder.glob("epoch_*.pt"))
    doomed = epochs[:-keep_last] if keep_last else epochs
    for p in doomed:
        p.unlink()
    return doomed
