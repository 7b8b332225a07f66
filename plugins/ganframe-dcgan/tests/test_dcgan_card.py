"""The shipped pretrained digits still match their model card (README, ``pretrained/
cards.json``), so the weights and the code that samples and scores them cannot drift apart.

On 2,000 samples (seed 0, drawn as ``mnist-fid`` draws them): the classifier Inception
Score and the classes covered need no data and are always checked; the FID is checked too
where the MNIST test split is at hand (``$GANFRAME_DATA/mnist``, as on CI). The card's
``check_*`` figures were measured the same way when the file was shipped
(``bench/ship_pretrained.py``). Skipped while the plugin ships no such file.
"""

from __future__ import annotations

import pytest
import torch
from ganframe_dcgan import distances, metric
from ganframe_dcgan.mnist import load_split
from ganframe_dcgan.plugin import MnistFidConfig

from ganframe import api
from ganframe.components import generate
from ganframe.errors import UserError

N = 2000
#: Documented in the README: each shipped file stays under this.
MAX_BYTES = 10_000_000


def _shipped(name: str):  # type: ignore[no-untyped-def]
    spec = api.get_registry().pretrained_model(name)
    if spec is None:
        pytest.skip(f"{name} is not shipped (no entry in pretrained/cards.json)")
    return spec


def _draw(gen: torch.nn.Module, labels: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """2,000 images exactly as ``mnist-fid`` draws them (batches of 500 from one seed);
    for a conditional generator, every class in turn."""
    rng = torch.Generator().manual_seed(0)
    chunks, ys = [], []
    for i in range(0, N, 500):
        y = torch.arange(i, i + 500) % gen.num_classes if labels else None
        chunks.append(generate(gen, 500, device="cpu", rng=rng, labels=y))
        ys.append(y)
    return torch.cat(chunks), (torch.cat(ys) if labels else None)


@pytest.mark.parametrize("name", ["dcgan-mnist", "dcgan-mnist-cond"])
def test_shipped_generator_matches_its_card(name: str) -> None:
    spec = _shipped(name)
    card = spec.card
    gen = api.pretrained(name)  # checks the sha256 first
    with spec.path.open("rb") as f:
        assert len(f.read()) < MAX_BYTES
    assert gen.data_kind == "image" and gen.loaded.step == card["step"]
    images, labels = _draw(gen.module, labels=gen.conditional)
    _, probs = metric.embed(images, "cpu")
    if labels is not None:  # drawn for a class: the classifier should agree
        accuracy = metric.label_accuracy(probs.argmax(1), labels)["label_accuracy"]
        assert abs(accuracy - card["check_label_accuracy_2k"]) <= 0.03, accuracy
    score = distances.inception_score(probs)
    assert abs(score - card["check_is_2k"]) <= 0.03 * card["check_is_2k"], score
    counts = torch.bincount(probs.argmax(1), minlength=10)
    assert int((counts >= 0.25 * N / 10).sum()) == card["classes_covered"], counts.tolist()
    try:
        load_split("test", None, download_missing=False, progress=False)
    except UserError:
        return  # no MNIST test split here: the FID part needs it
    fid = metric.MnistFid(MnistFidConfig(n_samples=N, download=False)).score(images)["fid"]
    assert abs(fid - card["check_fid_2k"]) <= 0.1 * card["check_fid_2k"] + 0.2, fid
