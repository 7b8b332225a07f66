"""Checkpoints remember the plugins they were made with and say when that changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ganframe import api
from ganframe.api import PluginVersionWarning


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = api.load_recipe(
        "gaussian-ring",
        overrides=["train.steps=2", "generator.hidden=8", "critic.hidden=8", "data.size=512",
                   "metrics=[]"],
    )
    return api.train(r, out=out / "run").checkpoint


def rewrite_plugins(src, dst, plugins):
    with safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["ganframe"])
    meta["plugins"] = plugins
    save_file(load_file(str(src)), str(dst), metadata={"ganframe": json.dumps(meta)})


def test_checkpoint_records_plugin_versions(checkpoint):
    ck = api.load_checkpoint(checkpoint)
    from ganframe import __version__

    assert ck.meta["plugins"]["ganframe.builtin.toy_plugin"] == __version__
    assert ck.meta["components"]["generator"] == {
        "type": "mlp", "plugin": "ganframe.builtin.toy_plugin", "version": __version__,
    }


def test_same_versions_load_silently(checkpoint, recwarn):
    api.load_checkpoint(checkpoint)
    assert not [w for w in recwarn if issubclass(w.category, PluginVersionWarning)]


def test_other_or_missing_plugin_versions_warn_with_names(checkpoint, tmp_path):
    changed = tmp_path / "changed.safetensors"
    rewrite_plugins(checkpoint, changed,
                    {"ganframe.builtin.toy_plugin": "0.0.1", "gone-plugin": "2.0"})
    with pytest.warns(PluginVersionWarning) as caught:
        api.load_checkpoint(changed)
    text = " | ".join(str(w.message) for w in caught)
    assert "made with plugin ganframe.builtin.toy_plugin 0.0.1;" in text
    assert "is installed" in text
    assert "made with plugin gone-plugin 2.0, which is not loaded" in text
    # the CLI shows it as one warning line and still works
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ganframe", "sample", str(changed), "-n", "4", "-o",
         str(tmp_path / "s.npy")], capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 2 and "gone-plugin 2.0" in proc.stderr
    assert "Traceback" not in proc.stderr and "warnings.warn" not in proc.stderr
