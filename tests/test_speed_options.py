"""The single-process speed options on a convolutional recipe: a few steps agree with fp32
and the default memory format within stated tolerances."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tinydata import dcgan_overrides

from ganframe import api

pytest.importorskip("ganframe_dcgan")


def weights(tmp_path: Path, name: str, extra: list[str]) -> dict[str, torch.Tensor]:
    # Both networks at lr 2e-4, so the tolerances below relate to a known step size (the
    # recipe's generator runs at 2e-3).
    sets = [*dcgan_overrides(tmp_path / "data"), "train.steps=3", "train.checkpoint_every=0",
            "train.ema=0", "optim.generator.lr=2e-4", "optim.critic.lr=2e-4", *extra]
    res = api.train(api.load_recipe("dcgan-mnist", sets), out=tmp_path / name)
    return {k: v for k, v in load_file(str(res.checkpoint)).items()
            if k.startswith(("generator.", "critic."))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("ref")
    return root, weights(root, "fp32", [])


def test_channels_last_matches_default_layout(reference) -> None:
    root, ref = reference
    got = weights(root, "cl", ["train.channels_last=true"])
    # same maths, other kernels: agreement to float rounding (tolerance 1e-5)
    for k, v in ref.items():
        assert torch.allclose(v.float(), got[k].float(), atol=1e-5), k


def test_bf16_autocast_stays_close_to_fp32(reference) -> None:
    root, ref = reference
    got = weights(root, "bf16", ['train.precision="bf16"'])
    diffs = [float((ref[k].float() - got[k].float()).abs().max()) for k in ref
             if ref[k].is_floating_point()]
    assert max(diffs) > 0, "bf16 changed nothing: autocast did not run"
    # three Adam steps at lr 2e-4 move weights by ~6e-4; bf16 stays within 5e-3 of fp32
    assert max(diffs) < 5e-3, max(diffs)
