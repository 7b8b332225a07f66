"""What ``ganframe sample`` does, behind the thin command in :mod:`ganframe.cli`.

``REF`` is a checkpoint, a run folder, a generator file (``ganframe export``) or the name of
a pretrained generator (``ganframe models``); see :func:`ganframe.pretrained.resolve` for
which wins when a name is also a path. Sampling options the user does not give come from
the file (:func:`ganframe.export.recommended_sampling`), and the command says which it used.
``--interpolate``, ``--walk`` and ``--truncation`` are the latent tools of
:mod:`ganframe.latent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError

if TYPE_CHECKING:
    from ganframe.api import LoadedCheckpoint

#: Defaults of -n and --steps per mode: (samples or rows, steps or frames).
DEFAULTS = {"sample": (64, 0), "interpolate": (8, 10), "walk": (16, 24)}


@dataclass
class SampleRequest:
    """The command's arguments, as parsed by :mod:`ganframe.cli`."""

    ref: str
    output: Path
    n: int | None = None
    seed: int = 0
    labels: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    truncation: float | None = None
    interpolate: bool = False
    walk: bool = False
    steps: int | None = None
    path: str = "slerp"

    @property
    def mode(self) -> str:
        if self.interpolate and self.walk:
            raise UserError("--interpolate and --walk: choose one.")
        return "interpolate" if self.interpolate else "walk" if self.walk else "sample"


def load(ref: str, device: str) -> tuple[LoadedCheckpoint, str]:
    """(the loaded generator, how to call it in messages) for a path or a pretrained name."""
    from ganframe import api, pretrained

    path, spec = pretrained.resolve(ref)
    if spec is not None:
        return pretrained.load(spec, device=device), f"pretrained generator {spec.name!r}"
    return api.load_checkpoint(path, device=device), str(path)


def sampling_options(loaded: LoadedCheckpoint, given: dict[str, Any], what: str,
                     note: Callable[[str], None]) -> dict[str, Any]:
    """The user's options over the recommended ones, saying which recommended ones apply
    (those that differ from the generator's own defaults)."""
    from ganframe.export import recommended_sampling

    recommended, source = recommended_sampling(loaded)
    model = getattr(loaded.generator, "sampling_options", None)
    fields = getattr(model, "model_fields", {}) or {}
    used = {k: v for k, v in recommended.items()
            if k in fields and k not in given and v != fields[k].default}
    if used:
        shown = ", ".join(f"{k}={v}" for k, v in used.items())
        note(f"sampling with {shown}, recommended by {source} of {what}; give --option "
             "KEY=VALUE (or --temperature...) to change it")
    return {**{k: v for k, v in recommended.items() if k in fields}, **given}


def run(request: SampleRequest, note: Callable[[str], None]) -> tuple[int, Path]:
    """Generate and write; returns (how many samples, the file written)."""
    import torch

    from ganframe import api

    mode = request.mode
    if mode == "sample" and request.steps is not None:
        raise UserError("--steps goes with --interpolate or --walk.")
    if mode != "sample" and request.options:
        raise UserError(f"--{mode} moves through the latent space of an image or point "
                        "generator; it takes no sampling options (--option, --temperature...).")
    loaded, what = load(request.ref, request.device)
    n = request.n if request.n is not None else DEFAULTS[mode][0]
    steps = request.steps if request.steps is not None else DEFAULTS[mode][1]
    gen = loaded.generator
    device = next(iter(gen.parameters()), torch.empty(0)).device
    rng = torch.Generator(device=device).manual_seed(request.seed)
    if mode == "interpolate":
        return _interpolate(loaded, request, n, steps, rng, device)
    if mode == "walk":
        return _walk(loaded, request, n, steps, rng, device)
    if request.truncation is None:
        options = sampling_options(loaded, request.options, what, note)
        x = api.sample(loaded, n, seed=request.seed, labels=request.labels, **options)
    else:
        x = _truncated(loaded, request, n, rng, device)
    classes = api.sample_labels(loaded, request.labels, x.shape[0])
    return x.shape[0], api.write_samples(x, request.output, loaded, classes)


def _truncated(loaded: LoadedCheckpoint, request: SampleRequest, n: int, rng: Any,
               device: Any) -> Any:
    """``n`` samples from truncated latents; labels as :func:`ganframe.api.sample` takes
    them (drawn after the latents, so a seed keeps its noise)."""
    from ganframe import api, latent
    from ganframe.components import check_sampling_options, resolve_labels

    gen = loaded.generator
    latent.latent_generator(gen, "--truncation")
    if request.options:
        check_sampling_options(gen, request.options)
        raise UserError("--truncation draws the latents itself; leave out the sampling "
                        "options.")
    if request.labels is not None and not getattr(gen, "conditional", False):
        resolve_labels(gen, n, request.labels, device=device)  # refuses, saying why
    classes = api.sample_labels(loaded, request.labels, n)  # "all" rounds n up
    n = len(classes) if classes is not None else n
    z = latent.draw_latents(gen, n, device=device, rng=rng, truncation=request.truncation)
    y = resolve_labels(gen, n, classes, device=device, rng=rng)
    return latent.decode(gen, z, y).cpu()


def _is_image(x: Any) -> bool:
    return x.dim() == 4 and x.shape[1] in (1, 3)


def _interpolate(loaded: LoadedCheckpoint, request: SampleRequest, rows: int, steps: int,
                 rng: Any, device: Any) -> tuple[int, Path]:
    from ganframe import api, latent, latent_io

    x = latent.interpolation(loaded.generator, rows, steps, device=device, rng=rng,
                             path=request.path, labels=request.labels,
                             truncation=request.truncation).cpu()
    out = request.output
    if _is_image(x) and out.suffix.lower() == ".png":
        return x.shape[0], latent_io.write_grid_png(x, out, ncol=steps)
    if out.suffix.lower() == ".gif":
        raise UserError(f"-o {out}: an interpolation is a .png strip (or .npy); use --walk "
                        "for an animated GIF.")
    return x.shape[0], api.write_samples(x, out, loaded)


def _walk(loaded: LoadedCheckpoint, request: SampleRequest, n: int, frames: int, rng: Any,
          device: Any) -> tuple[int, Path]:
    from ganframe import api, latent, latent_io

    x = latent.walk(loaded.generator, n, frames, device=device, rng=rng,
                    labels=request.labels, truncation=request.truncation).cpu()
    out = request.output
    suffix = out.suffix.lower()
    if suffix == ".npy":
        return x.shape[0] * x.shape[1], api.write_samples(x.flatten(0, 1), out, loaded)
    if x.dim() != 5 or x.shape[2] not in (1, 3):
        raise UserError(f"--walk draws images; this generator makes {loaded.data_kind} "
                        "samples. Use --interpolate, or write the walk to a .npy file.")
    if suffix == ".gif":
        return x.shape[0] * x.shape[1], latent_io.write_gif(x, out)
    if suffix == ".png":  # one row per sample, one column per frame
        strip = x.transpose(0, 1).flatten(0, 1)
        return strip.shape[0], latent_io.write_grid_png(strip, out, ncol=frames)
    raise UserError(f"-o {out}: write a walk to a .gif (animated), a .png (one row per "
                    "sample) or a .npy file.")
