"""The FID Inception-v3: the 2015-12-05 TensorFlow Inception network that FID, KID and the
Inception Score are defined with, and where its weights come from.

Why ganframe holds this network itself: the libraries that ship it (torch-fidelity, and
torchmetrics' default extractor, which is torch-fidelity's) import torchvision, which cannot
always be installed beside a given torch build; the statistics themselves come from torchmetrics
(:mod:`ganframe.builtin.image_metrics`). The layer layout and parameter names follow the
standard PyTorch port of the TF graph, so the widely used state dict
``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release; torch-fidelity's file of the
same name) loads into it unchanged. It differs from torchvision's ImageNet Inception-v3 in
three places, as the TF graph does: the average pools of the A, C and first E blocks leave the
padding out of the mean, the last E block pools with a max, and the classifier has 1008
outputs.

Input protocol (the one torchmetrics' and torch-fidelity's default extractors use): uint8
RGB images (N, 3, H, W) of any size, resized bilinearly (``align_corners=False``,
antialiased, which changes nothing when enlarging) to 299 x 299, then mapped to about
[-1, 1] by ``(x - 128) / 128``. Outputs: the 2048 pool features (FID, KID, precision/recall)
and the 1008 logits without the classifier's bias (``logits_unbiased``, the Inception Score's).

Weights are never unpickled: the ``.pth`` file is a plain state dict, read by ganframe's own
tensors-only reader (:mod:`ganframe.builtin.pth_reader`; torch's own loader is not used,
not even with ``weights_only``); a ``.safetensors`` file with the same names works too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganframe.errors import UserError

#: The standard FID weights: file name, where they are published, and their hash. torch.hub
#: names files ``<name>-<first 8 hex digits of the sha256>.pth`` and checks only that prefix;
#: ganframe checks the whole sha256 and size, which several independent projects pin for
#: both releases (the same 95,628,359 bytes). ``GANFRAME_INCEPTION_SHA256`` overrides it; with
#: ``WEIGHTS_SHA256 = None`` only the prefix would be checked.
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URLS: tuple[str, ...] = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
)
STANDARD_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
STANDARD_BYTES = 95_628_359
WEIGHTS_SHA256: str | None = STANDARD_SHA256
WEIGHTS_SHA256_PREFIX = "6726825d"
SHA256_ENV = "GANFRAME_INCEPTION_SHA256"
#: The folder, inside ``$GANFRAME_DATA`` and inside the user cache, that holds the weights.
FOLDER = "inception"

INPUT_SIZE = 299
#: The smallest input the network accepts (each stride-2 stage still has a pixel left).
MIN_INPUT_SIZE = 75
POOL_FEATURES = 2048
NUM_LOGITS = 1008


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (TF's epsilon 0.001), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Any, stride: int = 1,
                 padding: Any = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    # TF's SAME average pool divides by the pixels inside the image, not by 9
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35 x 35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class BlockB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions (Mixed_6b-e)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class BlockD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = layer(b)
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8 x 8 block with split 1x3 / 3x1 outputs (Mixed_7b, Mixed_7c). ``max_pool``: the
    pooled branch of the last block takes a max (as the TF graph does), the other an
    average without padding."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([a, b, c, self.branch_pool(pooled)], 1)


class FidInceptionV3(nn.Module):
    """The FID Inception-v3 (see the module docstring). ``forward`` returns
    ``(pool features (N, 2048), unbiased logits (N, 1008))`` in float32.

    ``input_size`` is the side images are resized to: 299 is the protocol every published
    number uses; a smaller one (at least 75) exists only to make tests fast and gives numbers
    that compare with nothing.
    """

    def __init__(self, input_size: int = INPUT_SIZE) -> None:
        super().__init__()
        if input_size < MIN_INPUT_SIZE:
            raise ValueError(f"input_size must be at least {MIN_INPUT_SIZE}, got {input_size}")
        self.input_size = input_size
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(POOL_FEATURES, NUM_LOGITS)
        self.eval()

    def train(self, mode: bool = True) -> FidInceptionV3:
        # a fixed feature extractor: batch norm always uses its stored statistics
        return super().train(False)

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 (or 0..255 float) RGB images -> the network's resized, centred input."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(images.shape)}")
        x = images.to(torch.float32)
        size = (self.input_size, self.input_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                              antialias=True)
        return (x - 128.0) / 128.0

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = self.preprocess(images)
        for layer in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3):
            x = layer(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return pool, pool @ self.fc.weight.T


class FeatureHead(nn.Module):
    """One output of the network as a torchmetrics ``feature`` module: ``"pool"`` (2048)
    or ``"logits"`` (1008). ``num_features`` spares torchmetrics its probing forward."""

    def __init__(self, net: FidInceptionV3, output: str = "pool") -> None:
        super().__init__()
        if output not in ("pool", "logits"):
            raise ValueError(f"output must be 'pool' or 'logits', not {output!r}")
        self.net = net
        self.output = output
        self.num_features = POOL_FEATURES if output == "pool" else NUM_LOGITS

    def forward(self, images: Tensor) -> Tensor:
        pool, logits = self.net(images)
        return pool if self.output == "pool" else logits


# -- weights -------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a weights file: ``.safetensors``, or a ``.pth`` state dict read by
    :mod:`ganframe.builtin.pth_reader` (tensors only; nothing is unpickled)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{path}: cannot read the Inception weights ({exc}); expected "
                            f"the tensors of {WEIGHTS_NAME}.") from None
    from ganframe.builtin.pth_reader import read_pth

    return read_pth(path)


def load_inception(path: Path, device: torch.device | str = "cpu",
                   input_size: int = INPUT_SIZE) -> FidInceptionV3:
    """The network with the weights in ``path`` (every parameter must be there)."""
    net = FidInceptionV3(input_size)
    state = read_state_dict(Path(path))
    own = net.state_dict()
    # files saved before batch norm counted its batches lack the counters (unused here),
    # and a file saved with the auxiliary classifier carries it: neither changes a feature
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise UserError(f"{path}: not the FID Inception weights ({' '.join(first)[:300]}); "
                        f"expected {WEIGHTS_NAME}.") from None
    # channels-last convolutions: the same features (to float rounding) about 1.4x faster
    # on a CPU (oneDNN; bench/inception_fid.py) and what tensor cores want on a GPU
    return net.to(device=device, memory_format=torch.channels_last).eval()


def expected_sha256() -> str | None:
    """The full sha256 the weights must have, when known (constant or environment)."""
    return (os.environ.get(SHA256_ENV, "").strip().lower() or WEIGHTS_SHA256 or None)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


_HASHES: dict[tuple[str, int, int], str] = {}


def weights_id(path: Path) -> str:
    """The sha256 of a weights file, computed once per process per (path, size, mtime): the
    reference-statistics cache is keyed by it, so other weights never reuse stale features."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(Path(path))
    return _HASHES[key]


def describe_weights(path: Path) -> str:
    """Which weights a score was computed with, for its report: published FID, KID and IS
    numbers are only comparable when this is the standard file."""
    digest = weights_id(path)
    if digest == expected_sha256():
        return f"{WEIGHTS_NAME} (standard, sha256 {digest[:12]}...)"
    return (f"{Path(path).name} (sha256 {digest[:12]}..., not the standard {WEIGHTS_NAME}: "
            "values are comparable with published ones only if it holds the same tensors)")


def _places(data_root: Path | None) -> list[Path]:
    """Where the weights are looked for, in order: ``$GANFRAME_DATA/inception/``, then the
    user cache's ``inception/`` (where a download goes)."""
    from ganframe.download import cache_dir

    root = data_root
    if root is None and os.environ.get("GANFRAME_DATA", "").strip():
        root = Path(os.environ["GANFRAME_DATA"].strip()).expanduser()
    places = [root / FOLDER] if root is not None else []
    return [*places, cache_dir(FOLDER)]


def _check_prefix(path: Path) -> str | None:
    """The download's own check when only the hash prefix is known (torch.hub's check)."""
    got = file_sha256(path)
    if not got.startswith(WEIGHTS_SHA256_PREFIX):
        return f"checksum mismatch (sha256 {got}, expected {WEIGHTS_SHA256_PREFIX}...)"
    return None


def _hash_text() -> str:
    full = expected_sha256()
    return f"sha256 {full}" if full else f"sha256 starting with {WEIGHTS_SHA256_PREFIX}"


def locate_weights(explicit: str | Path | None = None, *, data_root: Path | None = None,
                   download: bool = True, urls: tuple[str, ...] | None = None,
                   progress: bool = True) -> Path:
    """The path of the FID Inception weights: ``explicit`` when given, else
    ``<GANFRAME_DATA>/inception/<name>`` (or its ``.safetensors`` twin), else the user
    cache's, else downloaded once into the cache with its hash checked.

    Offline or refused: a :class:`UserError` that names the file, where to put it and its
    hash; never a traceback."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"Inception weights {path} do not exist; give the path of "
                            f"{WEIGHTS_NAME} ({_hash_text()}).")
        return path
    places = _places(data_root)
    for folder in places:
        for name in (WEIGHTS_NAME, Path(WEIGHTS_NAME).with_suffix(".safetensors").name):
            if (folder / name).is_file():
                return folder / name
    target = places[-1] / WEIGHTS_NAME
    where = " or ".join(str(p / WEIGHTS_NAME) for p in places)
    advice = (f"Put {WEIGHTS_NAME} ({_hash_text()}, from {(urls or WEIGHTS_URLS)[0]}) at "
              f"{where}, or name the file with the metric's `weights` option.")
    if not download:
        raise UserError(f"the FID Inception weights are not here and downloading is off "
                        f"(download = false). {advice}")
    from ganframe.download import fetch_file

    full = expected_sha256()
    size = STANDARD_BYTES if full == STANDARD_SHA256 else None  # fails fast on a wrong file
    return fetch_file(list(urls or WEIGHTS_URLS), target, sha256=full, size=size,
                      verify=None if full else _check_prefix,
                      label="FID Inception weights " + WEIGHTS_NAME, progress=progress,
                      hint=advice)
