"""Checkpoint integrity: a damaged file raises an error naming its path, never loads changed weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atft_dagster.model import ATFTGATFAN, TrainingConfig
from atft_dagster.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = TrainingConfig(hidden=8, attn_heads=2)
    model = ATFTGATFAN(6, cfg)
    payload = {
        "config": cfg.model_dump(),
        "state_dict": model.state_dict(),
        "epoch": 3,
        "history": [{"a": 1.5}],
    }
    path = tmp_path / "best.pt"
    save_checkpoint(payload, path)
    return path, payload


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_checkpoint_round_trips_with_its_checksum(saved):
    path, payload = saved
    assert _same(load_checkpoint(path), payload)
    assert "sha256" in torch.load(path, weights_only=True)


@pytest.mark.parametrize("damage", ["empty", "zeros", "truncated"])
def test_an_unreadable_file_names_its_path(saved, damage):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "zeros": bytes(len(data)), "truncated": data[: len(data) // 2]}[damage])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_a_changed_weight_is_caught(saved):
    path, payload = saved
    ck = torch.load(path, weights_only=True)
    ck["state_dict"]["heads.point.weight"][0, 0] += 1e-3  # what a bit flip in the tensor data does
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_single_byte_flips_never_load_changed_content(saved):
    path, payload = saved
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    caught = 0
    for pos in rng.choice(len(data), size=40, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        path.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError:
            caught += 1
            continue
        assert _same(loaded, payload), f"byte {pos} changed the content silently"
    assert caught > 0


def test_a_checkpoint_without_checksum_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"epoch": 1, "w": torch.ones(2)}, path)
    assert load_checkpoint(path)["epoch"] == 1
