"""Generator files (``ganframe export``), pretrained generators by name
(``register_pretrained``, ``ganframe models``, ``ganframe sample NAME``) and the latent tools
(``--interpolate``, ``--walk``, ``--truncation``), on the core's toy problem.

Tiny runs of the gaussian-ring recipes (unconditional and conditional) are trained here; the
image and text round trips live with the plugins that provide those generators
(``plugins/*/tests/test_*_pretrained.py``).
"""

from __future__ import annotations

import json
import math
import types
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from ganframe import api, latent
from ganframe.checkpoint import read_checkpoint, save_checkpoint
from ganframe.cli import app
from ganframe.errors import UserError
from ganframe.export import EXPORT_KEY, export_generator, recipe_hash
from ganframe.hookspecs import hookimpl
from ganframe.pretrained import file_sha256
from ganframe.testing import host_with, run_recipe

TINY = ["data.size=256", "generator.hidden=16", "critic.hidden=16", "train.batch_size=32"]


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step run of gaussian-ring with an EMA: its last checkpoint."""
    out = tmp_path_factory.mktemp("ring")
    return run_recipe("gaussian-ring", steps=3, out=out,
                      overrides=[*TINY, "train.ema=0.9"]).checkpoint


@pytest.fixture(scope="module")
def ring_cond(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ringc")
    return run_recipe("gaussian-ring-cond", steps=2, out=out, overrides=TINY).checkpoint


def _meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["ganframe"])


def _keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        return sorted(f.keys())


# -- export -> sample -----------------------------------------------------------------------


def test_export_keeps_the_ema_generator_only_and_samples_the_same(ring: Path,
                                                                  tmp_path: Path) -> None:
    out = export_generator(ring, tmp_path / "g.safetensors")
    assert out.weights == "ema" and out.dtype == "float32"
    keys = _keys(out.path)
    assert keys and all(k.startswith("generator.") for k in keys)  # no critic, optim, rng
    ckpt = read_checkpoint(ring)
    for key in keys:  # the EMA weights, not the trained ones
        torch.testing.assert_close(read_checkpoint(out.path).tensors[key],
                                   ckpt.tensors["ema." + key.removeprefix("generator.")])
    assert out.bytes < ring.stat().st_size / 2
    a = api.sample(ring, 50, seed=4)
    b = api.sample(out.path, 50, seed=4)
    assert torch.equal(a, b)


def test_half_export_is_half_the_size_and_samples_nearly_the_same(ring: Path,
                                                                   tmp_path: Path) -> None:
    full = export_generator(ring, tmp_path / "f.safetensors")
    half = export_generator(ring, tmp_path / "h.safetensors", half=True)
    assert half.dtype == "float16" and _meta(half.path)[EXPORT_KEY]["dtype"] == "float16"
    def weight_bytes(path: Path) -> int:
        return sum(t.numel() * t.element_size() for t in read_checkpoint(path).tensors.values())

    assert weight_bytes(half.path) * 2 == weight_bytes(full.path)
    assert half.bytes < full.bytes
    a, b = api.sample(full.path, 200, seed=1), api.sample(half.path, 200, seed=1)
    assert not torch.equal(a, b)
    torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


def test_export_metadata_says_how_it_was_trained(ring: Path, tmp_path: Path) -> None:
    meta = _meta(export_generator(ring, tmp_path / "g.safetensors").path)
    section = meta[EXPORT_KEY]
    run_meta = read_checkpoint(ring).meta
    assert section["kind"] == "ganframe-generator" and section["format"] == 1
    assert section["step"] == 3
    assert section["recipe"] == {"name": "gaussian-ring",
                                 "hash": recipe_hash(run_meta["recipe"])}
    assert section["metrics"]["ring-modes"]["step"] == 3  # logged at the run's end
    assert "modes_covered" in section["metrics"]["ring-modes"]
    assert section["plugins"]["ganframe.builtin.toy_plugin"]
    # training-only parts of the recipe and record are gone
    assert set(meta["recipe"]) <= {"name", "description", "generator", "data", "metrics"}
    assert "optimizers" not in meta or not meta["optimizers"]
    assert "rng" not in meta and "recipe_dir" not in meta
    assert set(meta["components"]) == {"data", "generator", "metrics.0"}


def test_conditional_export_carries_its_classes(ring_cond: Path, tmp_path: Path) -> None:
    out = export_generator(ring_cond, tmp_path / "c.safetensors")
    section = _meta(out.path)[EXPORT_KEY]
    names = read_checkpoint(ring_cond).meta["data_info"].get("class_names") or [
        str(i) for i in range(8)]
    assert section["num_classes"] == 8 and section["class_names"] == names
    a = api.sample(ring_cond, 40, seed=2, labels=3)
    b = api.sample(out.path, 40, seed=2, labels=3)
    assert torch.equal(a, b)
    assert not torch.equal(b, api.sample(out.path, 40, seed=2, labels=5))


def test_re_exporting_an_exported_file_keeps_its_record(ring: Path, tmp_path: Path) -> None:
    first = export_generator(ring, tmp_path / "a.safetensors")
    again = export_generator(first.path, tmp_path / "b.safetensors", half=True)
    assert _meta(again.path)[EXPORT_KEY]["metrics"] == _meta(first.path)[EXPORT_KEY]["metrics"]
    assert _meta(again.path)[EXPORT_KEY]["weights"] == "ema"


def test_file_from_another_plugin_version_warns(ring: Path, tmp_path: Path) -> None:
    path = export_generator(ring, tmp_path / "g.safetensors").path
    ckpt = read_checkpoint(path)
    meta = dict(ckpt.meta)
    meta["plugins"] = {**meta["plugins"], "ganframe.builtin.toy_plugin": "0.0.1"}
    old = tmp_path / "old.safetensors"
    gen = types.SimpleNamespace(state_dict=lambda: {
        k.removeprefix("generator."): v for k, v in ckpt.tensors.items()})
    save_checkpoint(old, modules={"generator": gen}, optimizers={}, meta=meta, rng=False)
    with pytest.warns(api.PluginVersionWarning, match="0.0.1"):
        g = api.load_generator(old)
    assert g(5).shape == (5, 2)


# -- bad files ------------------------------------------------------------------------------


def test_bad_files_are_clear_errors(ring: Path, tmp_path: Path) -> None:
    good = export_generator(ring, tmp_path / "g.safetensors").path
    data = good.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    with pytest.raises(UserError, match="truncated"):
        api.load_generator(truncated)
    foreign = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(UserError, match="not a ganframe checkpoint"):
        api.load_generator(foreign)
    # an export section that is not ours, and one from a newer ganframe
    ckpt = read_checkpoint(good)
    gen = types.SimpleNamespace(state_dict=lambda: {
        k.removeprefix("generator."): v for k, v in ckpt.tensors.items()})
    for section, message in (({"kind": "other"}, "damaged"),
                             ({"kind": "ganframe-generator", "format": 99}, "format 99")):
        bad = tmp_path / "bad.safetensors"
        save_checkpoint(bad, modules={"generator": gen}, optimizers={},
                        meta={**ckpt.meta, EXPORT_KEY: section}, rng=False)
        with pytest.raises(UserError, match=message):
            api.load_generator(bad)
    with pytest.raises(UserError, match=r"\.safetensors"):
        export_generator(ring, tmp_path / "g.pt")


# -- pretrained by name -----------------------------------------------------------------------


def test_the_builtin_pretrained_generator_loads_by_name() -> None:
    spec = api.get_registry().pretrained_model("gaussian-ring")
    assert spec is not None and spec.plugin == "ganframe.builtin.models_plugin"
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and "gaussian-ring" in table.stdout and "72 kB" in table.stdout
    gen = api.pretrained("gaussian-ring")
    points = gen(2000, seed=0)
    radius = points.norm(dim=1)
    assert points.shape == (2000, 2)
    assert abs(float(radius.median()) - 2.0) < 0.2  # it learnt the ring of radius 2
    angles = torch.atan2(points[:, 1], points[:, 0])
    modes = torch.remainder(torch.round(angles / (2 * math.pi / 8)), 8).long()
    assert torch.bincount(modes, minlength=8).min() > 2000 / 8 / 4  # every mode drawn


def _plugin_shipping(path: Path, sha: str, name: str = "tiny-ring") -> types.ModuleType:
    module = types.ModuleType("ganframe_shipper.plugin")

    @hookimpl
    def register_pretrained(register):  # type: ignore[no-untyped-def]
        register(name, path, sha, summary="tiny", card={"fid": 1.5})

    module.register_pretrained = register_pretrained  # type: ignore[attr-defined]
    return module


def test_sha256_is_checked_at_load(ring: Path, tmp_path: Path) -> None:
    path = export_generator(ring, tmp_path / "g.safetensors").path
    sha = file_sha256(path)
    with host_with(_plugin_shipping(path, sha)) as host:
        assert host.registry.pretrained_model("shipper:tiny-ring").sha256 == sha
        assert api.pretrained("tiny-ring")(3).shape == (3, 2)
        rows = json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)
        row = next(r for r in rows if r["name"] == "tiny-ring")
        assert row["plugin"] == "shipper" and row["bytes"] == path.stat().st_size
        assert row["card"] == {"fid": 1.5}
        data = path.read_bytes()
        path.write_bytes(data[:-10])  # truncated after it was registered
        with pytest.raises(UserError, match="does not match the sha256"):
            api.pretrained("tiny-ring")
        path.write_bytes(data[:-4] + b"\0\0\0\0")  # same size, other bytes
        with pytest.raises(UserError, match="truncated, damaged or replaced"):
            api.pretrained("tiny-ring")
        path.unlink()
        with pytest.raises(UserError, match="missing"):
            api.pretrained("tiny-ring")


def test_a_registered_training_checkpoint_is_not_a_generator_file(ring: Path) -> None:
    with host_with(_plugin_shipping(ring, file_sha256(ring))), pytest.raises(
            UserError, match="training checkpoint, not a generator file"):
        api.pretrained("tiny-ring")


def test_register_pretrained_refuses_a_bad_sha256(tmp_path: Path) -> None:
    from ganframe.plugins import PluginWarning

    with pytest.warns(PluginWarning, match="sha256"), host_with(
            _plugin_shipping(tmp_path / "x.safetensors", "abc"), check=False) as host:
        info = next(p for p in host.plugins if p.name == "shipper")
        assert "sha256 must be 64 hex digits" in info.status
        assert host.registry.pretrained_model("tiny-ring") is None


def test_names_and_paths_are_not_confused(ring: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="is a path"):
        api.pretrained(str(ring))
    with pytest.raises(UserError, match="name of a pretrained generator"):
        api.load_generator("gaussian-ring")
    with pytest.raises(UserError, match="Did you mean 'gaussian-ring'"):
        api.pretrained("gaussian-rng")
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", "gaussian-ring", "-o", "x.safetensors"])
    assert result.exit_code == 2 and "name of a pretrained generator" in result.stderr
    result = runner.invoke(app, ["sample", "no-such-model", "-o", "x.png"])
    assert result.exit_code == 2 and "no pretrained generator called" in result.stderr
    result = runner.invoke(app, ["sample", "./no-such.safetensors", "-o", "x.png"])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    # an existing folder of that name wins over the pretrained generator (documented)
    (tmp_path / "gaussian-ring").mkdir()
    result = runner.invoke(app, ["sample", "gaussian-ring", "-o", "x.png"])
    assert result.exit_code == 2 and "no checkpoint found" in result.stderr
    result = runner.invoke(app, ["sample", "ganframe.builtin.models_plugin:gaussian-ring",
                                 "-n", "8", "-o", "x.npy"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "x.npy").is_file()


# -- latent tools ---------------------------------------------------------------------------


def test_slerp_keeps_the_norm_and_hits_both_ends() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 64, generator=g), torch.randn(4, 64, generator=g)
    path = latent.interpolate_latents(a, b, 9, "slerp")
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    mid = path[:, 4]
    assert float(mid.norm(dim=1).min()) > 0.9 * float(torch.minimum(a.norm(dim=1),
                                                                    b.norm(dim=1)).min())
    line = latent.interpolate_latents(a, b, 9, "line")[:, 4]
    assert float(line.norm(dim=1).mean()) < 0.8 * float(mid.norm(dim=1).mean())


def test_truncation_redraws_only_the_values_beyond_the_threshold() -> None:
    plain = torch.randn(500, 16, generator=torch.Generator().manual_seed(3))
    cut = latent.truncated_normal(500, 16, 0.7, device="cpu",
                                  rng=torch.Generator().manual_seed(3))
    assert float(cut.abs().max()) <= 0.7
    inside = plain.abs() <= 0.7
    assert torch.equal(cut[inside], plain[inside])
    tiny = latent.truncated_normal(100, 8, 0.001, device="cpu",
                                   rng=torch.Generator().manual_seed(0))
    assert float(tiny.abs().max()) <= 0.001
    with pytest.raises(UserError, match="positive threshold"):
        latent.truncated_normal(2, 2, 0.0, device="cpu")


def test_class_interpolation_goes_from_one_class_to_the_other(ring_cond: Path) -> None:
    gen = api.load_checkpoint(ring_cond).generator
    x = latent.interpolation(gen, 3, 5, device="cpu", rng=torch.Generator().manual_seed(0),
                             labels=[1, 6]).view(3, 5, 2)
    z = gen.sample_latent(3, "cpu", torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, last = gen(z, torch.full((3,), 1)), gen(z, torch.full((3,), 6))
    torch.testing.assert_close(x[:, 0], first)
    torch.testing.assert_close(x[:, -1], last)
    assert not torch.allclose(x[:, 2], first) and not torch.allclose(x[:, 2], last)
    with pytest.raises(UserError, match="out of range"):
        latent.interpolation(gen, 1, 3, device="cpu", labels=[0, 99])


def test_cli_latent_tools_on_the_toy(ring: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "i.npy"
    r = runner.invoke(app, ["sample", str(ring), "--interpolate", "-n", "3", "--steps", "4",
                            "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert "wrote 12 samples" in r.stdout
    import numpy as np

    assert np.load(out).shape == (12, 2)
    r = runner.invoke(app, ["sample", str(ring), "--truncation", "0.5", "-n", "7", "-o",
                            str(tmp_path / "t.npy")])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["sample", str(ring), "--walk", "-o", str(tmp_path / "w.gif")])
    assert r.exit_code == 2 and "--walk draws images" in r.stderr
    r = runner.invoke(app, ["sample", str(ring), "--interpolate", "--walk", "-o", "x.png"])
    assert r.exit_code == 2 and "choose one" in r.stderr
    r = runner.invoke(app, ["sample", str(ring), "--interpolate", "--path", "zigzag",
                            "-o", str(tmp_path / "z.npy")])
    assert r.exit_code == 2 and "slerp or line" in r.stderr


def test_gif_and_strip_writers(tmp_path: Path) -> None:
    from PIL import Image

    from ganframe import latent_io

    frames = torch.linspace(-1, 1, 6).view(6, 1, 1, 1, 1).expand(6, 4, 1, 8, 8)
    latent_io.write_gif(frames, tmp_path / "w.gif")
    with Image.open(tmp_path / "w.gif") as im:
        assert im.n_frames == 6 and im.size == (2 + 2 * 10, 2 + 2 * 10)
    latent_io.write_grid_png(frames[:, 0], tmp_path / "s.png", ncol=6)
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 + 6 * 10, 12)
        px = [im.getpixel((2 + 10 * i + 4, 6)) for i in range(6)]
    assert px == sorted(px) and px[0] == 0 and px[-1] == 255


def test_warnings_are_not_raised_for_the_shipped_file() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.pretrained("gaussian-ring")
