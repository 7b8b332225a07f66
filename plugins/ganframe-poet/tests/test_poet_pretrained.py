"""Text generators as shareable files: a tiny poet run is exported and sampled from the file
alone (vocabulary in the metadata, no data), and the recommended temperature travels with
checkpoints and exported files: ``ganframe sample`` uses it unless told otherwise, and says so.

The shipped ``lstm-poet`` file is checked against its model card in ``test_poet_card.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganframe import api
from ganframe.cli import app
from ganframe.errors import UserError
from ganframe.export import export_generator, recommended_sampling

RECIPE = """
name = "tiny-poet"
seed = 0
device = "cpu"

[data]
type = "poems"
path = "poems/tiny.train.txt"

[generator]
type = "lstm"
embedding_dim = 16
hidden_dim = 32
num_layers = 1
dropout = 0.0

[critic]
type = "cnn"
embedding_dim = 8
filters = 8
widths = [2, 3]

[train]
batch_size = 32
sample_every = 0
checkpoint_every = 0

[[phases]]
name = "mle"
loss = { type = "mle", eval_every = 1000 }
steps = 3

[[metrics]]
type = "bleu"
every = 0
n_samples = 20
temperature = 0.7
"""


@pytest.fixture
def poet(corpus: Path, tmp_path: Path) -> Path:
    from ganframe.testing import run_recipe

    recipe = corpus.parent.parent / "tiny.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    return run_recipe(recipe, steps=3, out=tmp_path / "run").checkpoint


def test_text_generator_round_trip_without_data(poet: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = export_generator(poet, tmp_path / "poet.safetensors", half=True)
    assert out.sampling["temperature"] == 0.7  # from the recipe's bleu metric
    loaded = api.load_generator(out.path).loaded
    section = loaded.meta["export"]
    assert section["sampling"]["temperature"] == 0.7
    assert "bleu" in section["metrics"]
    assert loaded.info["vocab"][:4] == api.load_checkpoint(poet).info["vocab"][:4]
    assert "path" not in loaded.meta["recipe"]["data"]  # no file of the machine it came from
    assert not Path(str(loaded.info.get("source", "x"))).is_absolute()
    ids_ckpt = api.sample(poet, 6, seed=2, temperature=0.7)
    ids_file = api.sample(out.path, 6, seed=2, temperature=0.7)
    assert ids_ckpt.shape == ids_file.shape  # fp16 weights may pick another character
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.setenv("GANFRAME_DATA", str(empty))  # no poems anywhere
    r = CliRunner().invoke(app, ["sample", str(out.path), "-n", "5", "-o", "poems.txt"])
    assert r.exit_code == 0, r.stderr
    assert "temperature=0.7" in r.stderr and "recommended" in r.stderr
    lines = (tmp_path / "poems.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(lines)


def test_sample_uses_the_recommended_temperature_unless_given(poet: Path,
                                                               tmp_path: Path) -> None:
    loaded = api.load_checkpoint(poet)
    options, source = recommended_sampling(loaded)
    assert options["temperature"] == 0.7 and "bleu" in source
    gen = api.load_generator(poet)
    assert gen.sampling["temperature"] == 0.7
    torch.testing.assert_close(gen(8, seed=1), api.sample(loaded, 8, seed=1, temperature=0.7))
    assert torch.equal(gen(8, seed=1, temperature=1.5),
                       api.sample(loaded, 8, seed=1, temperature=1.5))
    runner = CliRunner()
    r = runner.invoke(app, ["sample", str(poet), "-n", "3", "-o", str(tmp_path / "a.txt")])
    assert r.exit_code == 0 and "temperature=0.7, recommended by its recipe's" in r.stderr
    r = runner.invoke(app, ["sample", str(poet), "-n", "3", "-o", str(tmp_path / "b.txt"),
                            "--temperature", "1.0"])
    assert r.exit_code == 0 and "recommended" not in r.stderr  # given: nothing to say


def test_latent_tools_refuse_text_generators(poet: Path) -> None:
    from ganframe import latent

    gen = api.load_checkpoint(poet).generator
    with pytest.raises(UserError, match="no latent space"):
        latent.interpolation(gen, 2, 3, device="cpu")
    r = CliRunner().invoke(app, ["sample", str(poet), "--truncation", "0.7", "-o", "x.txt"])
    assert r.exit_code == 2 and "no latent space" in r.stderr
