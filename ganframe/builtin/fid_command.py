"""``ganframe fid A B``: FID, KID, Inception Score and precision/recall between two image sets,
like pytorch-fid's and clean-fid's commands but with ganframe's datasets and checkpoints.

``A`` (the measured side) is a folder of images, a checkpoint (its generator's samples) or a
dataset split; ``B`` (the reference) is a folder or a dataset split, and its statistics are
cached like a training metric's. A dataset is written ``NAME`` or ``NAME:SPLIT``
(``mnist:test``): a registered dataset with its default options and that split.

This is the command-line face of :mod:`ganframe.builtin.image_metrics`, so it may import the
API (checkpoint loading) inside the command function only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from ganframe.errors import UserError

STATS = ("fid", "kid", "inception-score", "precision-recall")


def fid(
    a: Annotated[str, typer.Argument(help="Measured images: a folder, a checkpoint "
                                     "(.safetensors) or a dataset NAME[:SPLIT].")],
    b: Annotated[str, typer.Argument(help="Reference images: a folder or a dataset "
                                     "NAME[:SPLIT] (statistics cached).")],
    n: Annotated[int, typer.Option("--n", "-n", min=2, help="Images of A to use (samples "
                                   "drawn from a checkpoint; the first N of a folder or "
                                   "dataset).")] = 10_000,
    n_reference: Annotated[int | None, typer.Option(
        "--n-reference", min=2, help="Use only the first N images of B (default all).")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help=f"Compute only these (repeatable): {', '.join(STATS)}.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 50,
    device: Annotated[str, typer.Option(help="Where Inception (and a generator) run.")] = "cpu",
    weights: Annotated[Path | None, typer.Option(help="FID Inception weights file.")] = None,
    download: Annotated[bool, typer.Option(help="Download missing weights.")] = True,
    cache: Annotated[bool, typer.Option(help="Cache the reference statistics.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of samples and of KID/IS subsets.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    resize: Annotated[int, typer.Option(hidden=True, min=75, max=1024)] = 299,
) -> None:
    """FID, KID, IS and precision/recall between two image sets (folders, dataset splits, or
    a checkpoint's samples), with the standard FID Inception-v3."""
    from ganframe.builtin.image_metrics import InceptionMetric, InceptionMetricConfig

    stats = list(dict.fromkeys(only or STATS))
    bad = [s for s in stats if s not in STATS]
    if bad:
        raise UserError(f"--only {', '.join(bad)}: not a statistic; choose from "
                        f"{', '.join(STATS)}.")
    ref_config, ctx = _reference(b)
    try:
        config = InceptionMetricConfig(
            n_samples=n, batch_size=batch_size, device=device,
            weights=str(weights) if weights else None, download=download, cache=cache,
            also=stats[1:], resize=resize, reference_samples=n_reference, **ref_config)
    except ValueError as exc:  # torchmetrics missing: the validator's message
        raise UserError(_first_error(exc)) from None
    metric = InceptionMetric(stats[0], config, ctx)
    values = metric.score_images(_measured(a, n, batch_size, device, seed, ctx), seed)
    from ganframe.builtin.inception import describe_weights

    values = {"a": a, "b": b, **values}
    if metric.weights is not None:  # always here: the metric is not optional
        values["weights"] = describe_weights(metric.weights)
    if as_json:
        sys.stdout.write(json.dumps(values, indent=2) + "\n")
        return
    _table(values)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return str(errors()[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)


def _dataset(text: str, data_root: Path | None) -> tuple[Any, Any]:
    """(config, build) of ``NAME[:SPLIT]``: a registered dataset with its default options."""
    from ganframe.components import BuildContext
    from ganframe.plugins import get_registry

    name, _, split = text.partition(":")
    registry = get_registry()
    if name not in registry.names("dataset"):
        raise UserError(f"{text!r}: no such folder or file, and {name!r} is not a dataset "
                        f"(datasets: {', '.join(registry.names('dataset')) or 'none'}).")
    spec = registry.get("dataset", name)
    model = spec.config_model()
    options = {"split": split} if split else {}
    if split and "split" not in model.model_fields:
        raise UserError(f"{text!r}: dataset {name!r} has no splits; write just {name!r}.")
    try:
        config = model.model_validate(options)
    except ValueError as exc:
        raise UserError(f"{text!r}: {_first_error(exc)}") from None
    ctx = BuildContext(data_root=data_root)
    return config, lambda c: spec.build(c, ctx)


def _reference(b: str) -> tuple[dict[str, Any], Any]:
    """(metric options naming the reference, build context) for ``B``."""
    import os

    root = os.environ.get("GANFRAME_DATA", "").strip()
    data_root = Path(root).expanduser() if root else None
    ctx = SimpleNamespace(device="cpu", data_root=data_root, recipe_dir=None,
                          data_config=None, build_data=None)
    path = Path(b).expanduser()
    if path.is_dir():
        return {"folder": str(path.resolve())}, ctx
    if path.is_file():
        raise UserError(f"{b}: the reference (B) is a folder of images or a dataset "
                        "NAME[:SPLIT]; a checkpoint goes first (A).")
    ctx.data_config, ctx.build_data = _dataset(b, data_root)
    return {}, ctx


def _measured(a: str, n: int, batch_size: int, device: str, seed: int, ctx: Any) -> Any:
    """The batches of images of ``A``."""
    from ganframe.builtin import image_features as feats

    path = Path(a).expanduser()
    if path.is_dir():
        return feats.folder_batches(feats.folder_files(path)[:n], batch_size)
    if path.is_file():
        from ganframe.api import load_checkpoint

        ckpt = load_checkpoint(path, device=device)
        return feats.generated_batches(ckpt.generator, n, batch_size, device, seed)
    config, build = _dataset(a, ctx.data_root)
    return _limited(feats.dataset_batches(build(config), batch_size), n)


def _limited(batches: Any, n: int) -> Any:
    seen = 0
    for batch in batches:
        if seen >= n:
            return
        yield batch[: n - seen]
        seen += batch.shape[0]


def _table(values: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ganframe.textsafe import printable

    table = Table(title=f"{printable(values['a'])}  vs  {printable(values['b'])}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in values.items():
        if key in ("a", "b"):
            continue
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    Console(soft_wrap=True).print(table)
