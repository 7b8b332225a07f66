"""The small MNIST classifier whose features the ``mnist-fid`` metric compares.

Inception-v3 features are the wrong space for 28x28 digits and their weights cannot be
fetched offline, so the plugin ships its own network, trained by
``python -m ganframe_dcgan.train_classifier`` (see the README). The weights' sha256 is pinned
here: a metric computed with other weights would silently not be comparable.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

import torch
from torch import Tensor, nn

from ganframe.errors import UserError

#: sha256 of ``weights/mnist_classifier.safetensors`` as shipped.
WEIGHTS_SHA256 = "18682831ce8ad719c1ab5700d8ac9a83c39823669f198e245f217d76ea394988"
WEIGHTS_NAME = "mnist_classifier.safetensors"
FEATURE_DIM = 128


def weights_path() -> Path:
    return Path(str(files("ganframe_dcgan") / "weights" / WEIGHTS_NAME))


class MnistClassifier(nn.Module):
    """Three conv blocks and a 128-unit hidden layer; inputs are images in [-1, 1].

    The hidden layer (after ReLU) is the feature space of the Frechet distance.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 7
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 3
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, FEATURE_DIM), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(penultimate features, class logits) in one pass."""
        feats = self.features(x)
        return feats, self.head(feats)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_CACHE: dict[str, MnistClassifier] = {}


def load_classifier(
    device: torch.device | str = "cpu", path: Path | None = None,
    expected_sha256: str | None = None,
) -> MnistClassifier:
    """The shipped classifier in eval mode, verified against :data:`WEIGHTS_SHA256`."""
    from safetensors.torch import load as load_safetensors

    path = path or weights_path()
    expected = expected_sha256 or WEIGHTS_SHA256
    key = f"{path}|{expected}|{device}"
    if key in _CACHE:
        return _CACHE[key]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"the mnist-fid classifier weights {path} cannot be read ({exc.strerror or exc}); "
            "reinstall ganframe-dcgan, or recreate them with "
            "'python -m ganframe_dcgan.train_classifier' (see the plugin README)."
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise UserError(
            f"the mnist-fid classifier weights {path} have sha256 {digest}, expected "
            f"{expected}. The file is damaged or was retrained; reinstall ganframe-dcgan, or "
            "if you retrained on purpose, set WEIGHTS_SHA256 in ganframe_dcgan/classifier.py "
            "(metric values are then not comparable with published ones)."
        )
    model = MnistClassifier()
    model.load_state_dict(load_safetensors(data))
    model.eval().requires_grad_(False).to(device)
    _CACHE[key] = model
    return model
