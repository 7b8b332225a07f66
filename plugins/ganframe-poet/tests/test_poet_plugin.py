"""Packaging: lazy entry point, registered components and recipes, the text sample writer."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from ganframe_poet.text import Vocab
from ganframe_poet.writers import write_text

from ganframe.errors import UserError
from ganframe.plugins import load_plugins
from ganframe.testing import build_component, check_plugin, fake_batch, fake_data_info

REPO = Path(__file__).resolve().parents[3]


def test_entry_point_module_does_not_import_torch():
    code = (
        "import sys, json, ganframe_poet.plugin as p; "
        "print(json.dumps(['torch' in sys.modules, 'numpy' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False]


def test_plugin_registers_its_components_recipes_and_writer():
    host = load_plugins()
    info = {p.name: p for p in host.plugins}
    assert info["poet"].status == "ok"
    reg = host.registry
    by_kind = {kind: {s.name for s in specs if s.plugin == "poet"}
               for kind, specs in reg.components.items()}
    by_kind = {kind: names for kind, names in by_kind.items() if names}
    assert by_kind == {
        "dataset": {"poems"},
        "generator": {"lstm"},
        "critic": {"cnn", "lstm"},
        "loss": {"mle", "seqgan", "seqgan-critic", "gumbel"},
        "metric": {"bleu", "nll"},
    }
    for specs in reg.components.values():
        for spec in specs:
            if spec.plugin == "poet":
                spec.config_model()  # every lazy config resolves
    assert reg.writer("text", ".txt").plugin == "poet"
    names = {r.name for r in reg.recipes if r.plugin == "poet"}
    assert names == {"lstm-poet", "lstm-poet-gumbel"}


@pytest.mark.parametrize("name", ["lstm-poet.toml", "lstm-poet-gumbel.toml"])
def test_shipped_recipes_equal_the_repository_copies(name):
    shipped = (files("ganframe_poet") / "recipes" / name).read_text(encoding="utf-8")
    assert (REPO / "recipes" / name).read_text(encoding="utf-8") == shipped


@pytest.mark.parametrize("name", ["lstm-poet", "lstm-poet-gumbel"])
def test_shipped_recipes_validate(name):
    from ganframe.api import load_recipe

    resolved = load_recipe(name)
    rec = resolved.recipe
    assert rec.data.type == "poems" and rec.generator.type == "lstm"
    assert rec.phases[0].loss.type == "mle"
    assert rec.train.batch_size == 64


def _info():
    v = Vocab.build(["白日依山尽"])
    return v, {"vocab": v.tokens, "pad": v.pad, "unk": v.unk, "start": v.start, "end": v.end}


def test_text_writer_writes_one_poem_per_line(tmp_path):
    v, info = _info()
    rows = [
        [*v.encode("白日"), v.end, v.pad, v.pad],
        [*v.encode("山尽依"), v.unk, v.end],
        [v.start, *v.encode("日日日"), v.pad],  # no end token: the row's length ends it
    ]
    path = tmp_path / "out" / "poems.txt"
    write_text(torch.tensor(rows), path, info)
    assert path.read_text(encoding="utf-8") == "白日\n山尽依□\n日日日\n"
    # Relaxed rows (N, T, V) are decoded by their most likely token.
    write_text(torch.nn.functional.one_hot(torch.tensor(rows), len(v)).float(), path, info)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "白日"
    with pytest.raises(UserError, match="vocabulary"):
        write_text(torch.tensor(rows), path, {"shape": [1]})


def test_networks_build_from_a_fake_text_description():
    # what sampling from a checkpoint does: networks sized from data_info alone
    info = fake_data_info("text")
    gen = build_component("generator", "lstm", data_info=info,
                          options={"embedding_dim": 8, "hidden_dim": 16})
    poems = gen.generate(3, device="cpu", rng=torch.Generator().manual_seed(0))
    assert poems.shape == (3, info["seq_len"]) and poems.dtype == torch.int64
    assert int(poems.max()) < len(info["vocab"])
    for critic_type in ("cnn", "lstm"):
        critic = build_component("critic", critic_type, data_info=info)
        assert critic(fake_batch(info, 5)).shape == (5,)


def test_ganframe_check_plugin_passes_on_a_tiny_corpus(corpus, tmp_path, monkeypatch):
    # the shipped recipes read $GANFRAME_DATA/poems/quatrains5.{train,test}.txt
    data = tmp_path / "data" / "poems"
    data.mkdir(parents=True)
    for split in ("train", "test"):
        text = corpus.with_name(f"tiny.{split}.txt").read_text(encoding="utf-8")
        (data / f"quatrains5.{split}.txt").write_text(text, encoding="utf-8")
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "data"))
    result = check_plugin("poet")
    assert result.ok, result.output
    assert {r["status"] for r in result.rows} == {"ok"}, result.output
    names = {(r["kind"], r["name"]) for r in result.rows}
    assert {("dataset", "poems"), ("loss", "seqgan"), ("metric", "bleu"),
            ("recipe", "lstm-poet"), ("recipe", "lstm-poet-gumbel")} <= names
