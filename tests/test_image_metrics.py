"""The Inception metrics (fid, kid, inception-score, precision-recall) and `ganframe fid`.

The real FID weights cannot be downloaded here, so the whole pipeline runs on an Inception-v3
of the same architecture with seeded random weights saved to a local file (features are then
deterministic), at a test-only input size of 75 px (the smallest the network takes; 299 px on
the CPU costs about a second per image). The values are checked against torchmetrics' own
API on the same images, the FID formula against scipy's sqrtm, and the download path against
a 127.0.0.1 server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("torchmetrics")

from ganframe.builtin import image_features as feats
from ganframe.builtin import image_scores as sc
from ganframe.builtin import inception
from ganframe.builtin.image_metrics import (
    InceptionMetric,
    InceptionMetricConfig,
    MetricWarning,
)
from ganframe.components import LatentGenerator
from ganframe.errors import MetricUnavailable, UserError
from ganframe.testing_mirror import closed_port, serve_folder

SIZE = 75  # test-only Inception input size (see the module docstring)


def random_inception(seed: int = 0) -> inception.FidInceptionV3:
    """The architecture with He-initialised convolutions and small random batch-norm
    shifts, so features neither vanish nor saturate through 94 layers."""
    torch.manual_seed(seed)
    net = inception.FidInceptionV3(SIZE)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.bias, 0.0, 0.1)
    return net


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("w") / "random-inception.safetensors"
    save_file(random_inception().state_dict(), str(path))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GANFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFRAME_DATA", raising=False)
    return tmp_path / "cache"


def images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n smooth random RGB 16x16 uint8 images (blurred noise, optionally brightened)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g)
    x = nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False)
    return (x * 200 + 20 + shift).clamp(0, 255).round().to(torch.uint8)


def write_folder(folder: Path, batch: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(batch):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return folder


def metric(name: str, weights: Path, folder: Path, **options) -> InceptionMetric:
    config = InceptionMetricConfig(folder=str(folder), weights=str(weights), resize=SIZE,
                                   batch_size=8, **options)
    return InceptionMetric(name, config, None)


class Painter(LatentGenerator):
    """A tiny fixed generator of 3x16x16 images in [-1, 1]."""

    latent_dim = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Linear(8, 3 * 16 * 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z)).view(-1, 3, 16, 16)


# -- the network ----------------------------------------------------------------------------


def test_architecture_has_the_standard_parameter_names_and_count():
    net = inception.FidInceptionV3(SIZE)
    names = set(net.state_dict())
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch5x5_2.bn.running_var",
                "Mixed_6e.branch7x7dbl_5.conv.weight", "Mixed_7c.branch3x3dbl_3b.bn.bias",
                "fc.weight", "fc.bias"):
        assert key in names, key
    # torchvision's Inception3 without the auxiliary head has 23,834,568 parameters with
    # 1000 classes; the FID graph's 1008-way classifier adds 8 x 2049
    assert sum(p.numel() for p in net.parameters()) == 23_834_568 + 8 * 2049
    pool, logits = net(images(2, 0))
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)


def test_weights_load_from_pth_in_both_torch_layouts_and_safetensors(tmp_path, weights):
    from safetensors.torch import load_file

    state = load_file(str(weights))
    x = images(3, 5)
    expected = inception.load_inception(weights, input_size=SIZE)(x)[0]
    for kw in ({}, {"_use_new_zipfile_serialization": False}):
        path = tmp_path / "w.pth"  # what the published .pth file is: a plain state dict
        torch.save({k: v for k, v in state.items() if "num_batches" not in k}, path, **kw)
        got = inception.load_inception(path, input_size=SIZE)(x)[0]
        assert torch.equal(got, expected)


def test_a_pth_that_is_not_a_state_dict_is_refused_without_running_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran')",))

    path = tmp_path / "evil.pth"
    torch.save({"a": Evil()}, path)
    with pytest.raises(UserError, match="not a plain PyTorch state dict"):
        inception.load_inception(path, input_size=SIZE)


# -- equal to torchmetrics' own API ------------------------------------------------------------


def test_fid_kid_is_equal_torchmetrics_on_the_same_images(tmp_path, weights):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = images(20, 1), images(12, 2, shift=30)
    folder = write_folder(tmp_path / "real", real)
    ours = metric("fid", weights, folder, also=["kid", "inception-score"], kid_subsets=4,
                  kid_subset_size=6, is_splits=2).score_images(iter([fake]), seed=3)

    net = inception.load_inception(weights, input_size=SIZE)
    tm_fid = FrechetInceptionDistance(feature=inception.FeatureHead(net, "pool"))
    tm_fid.update(real, real=True)
    tm_fid.update(fake, real=False)
    tm_kid = KernelInceptionDistance(feature=inception.FeatureHead(net, "pool"), subsets=4,
                                     subset_size=6)
    tm_kid.update(real, real=True)
    tm_kid.update(fake, real=False)
    tm_is = InceptionScore(feature=inception.FeatureHead(net, "logits"), splits=2)
    tm_is.update(fake)
    torch.manual_seed(3)
    kid_mean, kid_std = tm_kid.compute()
    torch.manual_seed(3)
    is_mean, is_std = tm_is.compute()

    assert ours["fid"] > 0.01
    assert ours["fid"] == pytest.approx(float(tm_fid.compute()), rel=1e-4, abs=1e-4)
    assert ours["kid"] == pytest.approx(float(kid_mean), rel=1e-4, abs=1e-4)
    assert ours["kid_std"] == pytest.approx(float(kid_std), rel=1e-4, abs=1e-4)
    assert ours["is"] == pytest.approx(float(is_mean), rel=1e-4, abs=1e-4)
    assert ours["is_std"] == pytest.approx(float(is_std), rel=1e-4, abs=1e-4)
    assert ours["n_samples"] == 12 and ours["n_reference"] == 20


def test_a_generator_is_scored_on_its_quantised_samples(tmp_path, weights):
    """evaluate() draws seeded samples and measures them as saved PNGs would be."""
    from ganframe.components import EvalContext

    folder = write_folder(tmp_path / "real", images(10, 1))
    m = metric("fid", weights, folder, n_samples=6)
    gen = Painter()
    got = m.evaluate(gen, None, EvalContext(torch.device("cpu"), seed=4))
    batch = torch.cat(list(feats.generated_batches(gen, 6, 8, "cpu", 4)))
    quantised = feats.to_uint8_rgb(batch)
    again = metric("fid", weights, folder).score_images(iter([quantised]))
    assert got["fid"] == pytest.approx(again["fid"], rel=1e-6)
    assert got["n_samples"] == 6


# -- behaviour ------------------------------------------------------------------------------


def test_identical_sets_give_fid_about_zero_and_a_shift_more_than_noise(tmp_path, weights):
    real = images(16, 1)
    m = metric("fid", weights, write_folder(tmp_path / "real", real), also=["kid"],
               kid_subset_size=8, kid_subsets=5)
    same = m.score_images(iter([real]))
    g = torch.Generator().manual_seed(9)
    noisy = (real.float() + torch.randint(-3, 4, real.shape, generator=g)).clamp(0, 255)
    perturbed = m.score_images(iter([noisy.to(torch.uint8)]))
    shifted = m.score_images(iter([images(16, 1, shift=60)]))
    assert abs(same["fid"]) < 1e-3 * perturbed["fid"] + 1e-6
    assert 0 < perturbed["fid"] < shifted["fid"]
    assert perturbed["kid"] < shifted["kid"]


def test_fid_formula_matches_scipy_sqrtm_on_random_features():
    from scipy import linalg

    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 12, generator=g, dtype=torch.float64)
    fake = torch.randn(200, 12, generator=g, dtype=torch.float64) * 1.3 + 0.4
    mu1, s1 = real.mean(0).numpy(), np.cov(real.numpy(), rowvar=False)
    mu2, s2 = fake.mean(0).numpy(), np.cov(fake.numpy(), rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    mu, sigma = sc.gaussian(real)
    assert sc.fid(mu, sigma, 300, fake) == pytest.approx(expected, rel=1e-8)


def test_precision_recall_match_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 5, generator=g)
    fake = torch.randn(30, 5, generator=g) + 0.7
    got = sc.precision_recall(real, fake, k=3, chunk=7)  # chunks smaller than the sets
    d_rr, d_ff, d_fr = (torch.cdist(a, b).double() for a, b in
                        ((real, real), (fake, fake), (fake, real)))
    r_real = d_rr.sort(1).values[:, 3]
    r_fake = d_ff.sort(1).values[:, 3]
    inside = d_fr <= r_real.unsqueeze(0)  # fake i in real ball j
    assert got["precision"] == pytest.approx(float(inside.any(1).double().mean()))
    assert got["recall"] == pytest.approx(
        float((d_fr.T <= r_fake.unsqueeze(0)).any(1).double().mean()))
    assert got["density"] == pytest.approx(float(inside.sum(1).double().mean() / 3))
    assert got["coverage"] == pytest.approx(float(inside.any(0).double().mean()))
    same = sc.precision_recall(real, real, k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = sc.precision_recall(real, fake + 100, k=3)
    assert far["precision"] == far["recall"] == 0.0


def test_reference_statistics_are_cached_per_weights(tmp_path, weights, cache):
    folder = write_folder(tmp_path / "real", images(10, 1))
    first = metric("fid", weights, folder).reference()
    files = list((cache / feats.CACHE_FOLDER).glob("*.safetensors"))
    assert len(files) == 1 and first.cached == files[0]
    m = metric("fid", weights, folder)
    m.network = lambda: pytest.fail("the cached reference needs no network")  # type: ignore
    again = m.reference()
    assert torch.equal(again.features, first.features) and torch.equal(again.mu, first.mu)
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file(random_inception(seed=1).state_dict(), str(other))
    metric("fid", other, folder).reference()
    assert len(list((cache / feats.CACHE_FOLDER).glob("*.safetensors"))) == 2


def test_a_dataset_split_is_a_reference(weights):
    """The recipe's dataset, another split of it, through the build context."""
    from types import SimpleNamespace

    from pydantic import BaseModel

    class Data(BaseModel):
        split: str = "train"

    class Images:
        kind = "image"

        def __init__(self, split: str) -> None:
            self.x = images(9, 1 if split == "train" else 2).float() / 127.5 - 1

        def __len__(self) -> int:
            return len(self.x)

        def get(self, index):
            return self.x[index]

        def info(self):
            return {}

    ctx = SimpleNamespace(device="cpu", data_root=None, data_config=Data(),
                          build_data=lambda c: Images(c.split))
    config = InceptionMetricConfig(split="test", weights=str(weights), resize=SIZE)
    got = InceptionMetric("fid", config, ctx).score_images(iter([images(9, 2)]))
    assert abs(got["fid"]) < 1e-3 and got["n_reference"] == 9


# -- weights: local copies, download, offline ------------------------------------------------


def test_the_network_has_the_real_weights_names_shapes_and_file_size():
    """The real file cannot be downloaded here, but its record section (names, shapes,
    dtypes, in storage order) was read from a public partial copy with ganframe's own
    legacy-layout reader (tests/data/README.md): the module must take exactly those tensors,
    and that layout must add up to the pinned size of the standard file."""
    layout = json.loads((Path(__file__).parent / "data" / "fid-inception-layout.json")
                        .read_text())
    own = inception.FidInceptionV3(inception.INPUT_SIZE).state_dict()
    expected = {name: (shape, dtype) for name, shape, dtype in layout["tensors"]}
    assert {k: (list(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in own.items()} == expected
    size = layout["header_bytes"] + sum(
        8 + int(np.prod(shape)) * getattr(torch, dtype).itemsize
        for _, shape, dtype in layout["tensors"])
    assert size == inception.STANDARD_BYTES


@pytest.fixture
def served(tmp_path, weights, monkeypatch):
    data = weights.read_bytes()
    import hashlib

    monkeypatch.setattr(inception, "WEIGHTS_SHA256", hashlib.sha256(data).hexdigest())
    with serve_folder(tmp_path / "www") as mirror:
        (mirror.root / "w").mkdir()
        (mirror.root / "w" / inception.WEIGHTS_NAME).write_bytes(data)
        yield mirror


def url_of(mirror) -> tuple[str, ...]:
    return (mirror.url("w") + inception.WEIGHTS_NAME,)


def test_weights_are_taken_from_ganframe_data_first(tmp_path, monkeypatch, weights):
    folder = tmp_path / "data" / "inception"
    folder.mkdir(parents=True)
    target = folder / inception.WEIGHTS_NAME
    target.write_bytes(b"x")
    monkeypatch.setenv("GANFRAME_DATA", str(tmp_path / "data"))
    assert inception.locate_weights(urls=("http://127.0.0.1:1/none",)) == target


def test_download_good_file_lands_in_the_cache_once(served, cache):
    got = inception.locate_weights(urls=url_of(served), progress=False)
    assert got == cache / "inception" / inception.WEIGHTS_NAME and got.is_file()
    served.requests.clear()
    assert inception.locate_weights(urls=url_of(served), progress=False) == got
    assert served.requests == []


def test_download_with_a_wrong_sha256_is_refused(served, cache, monkeypatch):
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(UserError) as err:
        inception.locate_weights(urls=url_of(served), progress=False)
    text = str(err.value)
    assert "checksum mismatch" in text and inception.WEIGHTS_NAME in text and "0" * 64 in text
    assert not (cache / "inception" / inception.WEIGHTS_NAME).exists()


def test_the_standard_hash_and_size_are_checked_on_download(served, cache, monkeypatch):
    # the pinned standard weights: a served file of another size and hash is refused
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", inception.STANDARD_SHA256)
    with pytest.raises(UserError) as err:
        inception.locate_weights(urls=url_of(served), progress=False)
    text = str(err.value)
    assert inception.WEIGHTS_NAME in text and "mismatch" in text
    assert not (cache / "inception" / inception.WEIGHTS_NAME).exists()


def test_only_the_hash_prefix_known_is_checked_too(served, cache, monkeypatch):
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", None)
    with pytest.raises(UserError, match="expected 6726825d"):
        inception.locate_weights(urls=url_of(served), progress=False)


def test_an_interrupted_download_resumes(served, cache):
    served.cut["/w/" + inception.WEIGHTS_NAME] = 10_000
    got = inception.locate_weights(urls=url_of(served), progress=False)
    assert got.stat().st_size == (served.root / "w" / inception.WEIGHTS_NAME).stat().st_size
    assert any(r and r.startswith("bytes=10000-") for r in served.ranges_asked)


def test_offline_names_the_file_where_to_put_it_and_its_hash(cache):
    urls = (f"http://127.0.0.1:{closed_port()}/{inception.WEIGHTS_NAME}",)
    with pytest.raises(UserError) as err:
        inception.locate_weights(urls=urls, progress=False)
    text = str(err.value)
    assert inception.WEIGHTS_NAME in text and str(cache / "inception") in text
    # the whole pinned hash, so a user can check a copy fetched by hand
    assert f"sha256 {inception.WEIGHTS_SHA256}" in text
    assert inception.WEIGHTS_SHA256.startswith(inception.WEIGHTS_SHA256_PREFIX)
    with pytest.raises(UserError, match="downloading is off"):
        inception.locate_weights(download=False)


def test_an_optional_metric_without_weights_warns_and_steps_aside(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "WEIGHTS_URLS", (f"http://127.0.0.1:{closed_port()}/w",))
    with pytest.raises(UserError):
        InceptionMetric("fid", InceptionMetricConfig(folder=str(tmp_path)), None)
    with pytest.warns(MetricWarning, match=inception.WEIGHTS_NAME):
        m = InceptionMetric("fid", InceptionMetricConfig(folder=str(tmp_path), optional=True),
                            None)
    with pytest.raises(MetricUnavailable):
        m.score_images(iter([images(2, 0)]))


def test_the_training_loop_drops_an_unavailable_metric_and_goes_on():
    from types import SimpleNamespace

    from ganframe.loop.callbacks import MetricRunner, ScheduledMetric

    class Gone:
        def evaluate(self, *a):
            raise MetricUnavailable("metric 'fid': weights missing.")

    class One:
        def evaluate(self, *a):
            return {"v": 1.0}

    rows: list[dict] = []

    class Trainer:
        is_main, device, seed, data_info, dataset, phase_name = True, "cpu", 0, {}, None, "p"
        state = SimpleNamespace(step=5)
        limit = 10

        def evaluating(self):
            import contextlib

            return contextlib.nullcontext(None)

        def emit(self, *a):
            pass

        def log(self, row):
            rows.append(row)

    runner = MetricRunner([ScheduledMetric("fid", Gone(), 5), ScheduledMetric("x", One(), 5)])
    with pytest.warns(UserWarning, match="Training continues without it"):
        runner.run(Trainer(), final=False)
    runner.run(Trainer(), final=True)
    assert [r["metric"] for r in rows] == ["x", "x"] and len(runner.metrics) == 1


# -- command line -------------------------------------------------------------------------------


def test_fid_command_two_folders_json_and_table(tmp_path, weights, monkeypatch):
    from typer.testing import CliRunner

    from ganframe.cli import app

    a = write_folder(tmp_path / "a", images(12, 1))
    b = write_folder(tmp_path / "b", images(12, 2, shift=40))
    args = ["fid", str(a), str(b), "--weights", str(weights), "--only", "fid", "--only",
            "precision-recall", "--batch-size", "6", "--resize", str(SIZE)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["fid"] > 0 and 0 <= values["precision"] <= 1 and values["n_samples"] == 12
    # random weights: the report says they are not the standard file
    assert "not the standard" in values["weights"] and weights.name in values["weights"]
    import hashlib

    monkeypatch.setattr(inception, "WEIGHTS_SHA256",
                        hashlib.sha256(weights.read_bytes()).hexdigest())
    standard = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert standard["weights"].startswith(inception.WEIGHTS_NAME + " (standard")
    assert standard["fid"] == values["fid"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "fid" in table.output and "recall" in table.output
    bad = CliRunner().invoke(app, ["fid", str(a), "no-such-dataset:test", "--weights",
                                   str(weights)])
    assert bad.exit_code == 2 and "not a dataset" in bad.output


def test_a_recipe_with_these_metrics_needs_the_extra(monkeypatch, tmp_path):
    import importlib.util

    from pydantic import ValidationError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torchmetrics" else real(name, *a))
    with pytest.raises(ValidationError, match=r"pip install 'ganframe\[metrics\]'"):
        InceptionMetricConfig()
    with pytest.raises(ValidationError, match="not both"):
        monkeypatch.setattr(importlib.util, "find_spec", real)
        InceptionMetricConfig(split="test", folder=str(tmp_path))
