"""The built-in toy problem learns: the core works end to end without any plugin."""

from __future__ import annotations

import torch

from ganframe import api
from ganframe.builtin.toy import GaussianRing, ring_centres, sliced_w1
from ganframe.builtin.toy_plugin import RingConfig


def test_gaussian_ring_covers_modes_and_gets_closer(tmp_path):
    recipe = api.load_recipe(
        "gaussian-ring",
        overrides=[
            "train.steps=800",
            "metrics.0.every=200",
            "train.sample_every=0",
            "train.checkpoint_every=0",
            "train.log_every=100",
        ],
    )
    result = api.train(recipe, out=tmp_path / "ring")
    rows = [r for r in result.metrics if r["event"] == "metric"]
    assert [r["step"] for r in rows] == [200, 400, 600, 800]
    first, last = rows[0], rows[-1]
    assert last["modes_covered"] >= 6, rows
    assert last["sliced_w1"] < 0.5 * first["sliced_w1"], rows
    assert last["high_quality"] > first["high_quality"], rows


def test_ring_data_sits_on_the_modes():
    data = GaussianRing(RingConfig(size=4000, std=0.05))
    centres = ring_centres(8, 2.0)
    d = torch.cdist(data.get(torch.arange(len(data))), centres).min(dim=1).values
    assert float((d < 0.2).float().mean()) > 0.99
    assert data.info()["modes"] == 8 and len(data) == 4000


def test_sliced_w1_is_zero_for_equal_sets_and_grows_with_shift():
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_w1(x, x) == 0.0
    near, far = sliced_w1(x, x + 0.1), sliced_w1(x, x + 1.0)
    assert 0 < near < far
