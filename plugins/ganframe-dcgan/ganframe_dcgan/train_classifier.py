"""Train the MNIST classifier behind the ``mnist-fid`` metric (a reproducible recipe).

Usage (reads MNIST through the usual search: ``$GANFRAME_DATA/mnist``, the cache, ...)::

    GANFRAME_DATA=/path/to/datasets \\
        python -m ganframe_dcgan.train_classifier \\
        --out ganframe_dcgan/weights/mnist_classifier.safetensors

It prints the test accuracy and the sha256 of the file; put the latter into
``WEIGHTS_SHA256`` in :mod:`ganframe_dcgan.classifier` when you ship new weights. Same seed,
same torch version and same thread count give the same file; other setups give an equally
good classifier with another hash.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ganframe_dcgan.classifier import MnistClassifier, sha256_of
from ganframe_dcgan.mnist import load_split


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Small random rotations, scalings and shifts, so that features of imperfect generated
    digits stay meaningful; one batched ``grid_sample``, no per-image Python."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 / 14)  # +-2 pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def to_float(images: Tensor) -> Tensor:
    return images.to(torch.float32).div_(127.5).sub_(1.0)


@torch.no_grad()
def accuracy(model: MnistClassifier, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        logits = model(to_float(images[i : i + batch]))
        correct += int((logits.argmax(1) == labels[i : i + batch]).sum())
    return correct / len(images)


def train(epochs: int, batch_size: int, lr: float, seed: int) -> tuple[MnistClassifier, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_x, train_y, _ = load_split("train")
    test_x, test_y, _ = load_split("test")
    model = MnistClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train_x), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = augment(to_float(train_x[idx]), gen)
            loss = F.cross_entropy(model(x), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(model, test_x, test_y)
        print(
            f"epoch {epoch + 1}/{epochs}: train loss {total / len(order):.4f}, "
            f"test accuracy {acc:.4%} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return model, accuracy(model, test_x, test_y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    model, acc = train(args.epochs, args.batch_size, args.lr, args.seed)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "test_accuracy": f"{acc:.4f}",
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "lr": str(args.lr),
        "seed": str(args.seed),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=meta)
    print(json.dumps({"out": str(args.out), "test_accuracy": acc, "sha256": sha256_of(args.out),
                      "bytes": args.out.stat().st_size}))


if __name__ == "__main__":
    main()
