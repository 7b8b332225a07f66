"""Pretrained generators by name: what plugins ship through ``register_pretrained``.

A plugin ships a generator file (written by ``ganframe export``) inside its package and
registers it with its sha256. Using it by name (``ganframe sample dcgan-mnist``,
:func:`ganframe.api.pretrained`) hashes the file first: a truncated, damaged or replaced file
is refused with a message that says to reinstall the plugin, before any byte of it is
parsed. Then it is read like any checkpoint (bounded header, CRC-32 of every tensor).

Names and paths: ``ganframe sample`` takes either. An existing file or folder wins over a
pretrained name (what is on disk is what the user points at, as with a shell command), and
``plugin:name`` always means the pretrained generator; a reference that is neither says so
and lists the names there are.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.errors import UserError
from ganframe.registry import PretrainedSpec, Registry

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import torch

    from ganframe.api import LoadedCheckpoint

__all__ = [
    "Generator",
    "file_sha256",
    "find",
    "load",
    "looks_like_path",
    "model_rows",
    "resolve",
]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def looks_like_path(ref: str) -> bool:
    """Whether a reference is written as a path (a folder separator or a file suffix), so
    it is never taken for a pretrained generator's name."""
    return (os.sep in ref or "/" in ref or ref.endswith(".safetensors")
            or ref.startswith((".", "~")))


def _available(registry: Registry) -> str:
    names = ", ".join(m.name for m in registry.pretrained)
    return names or "none (install ganframe-dcgan or ganframe-poet for some)"


def find(name: str, registry: Registry | None = None) -> PretrainedSpec:
    """The registered pretrained generator ``name`` (or ``plugin:name``)."""
    from ganframe.registry import closest

    registry = registry or _registry()
    spec = registry.pretrained_model(name)
    if spec is not None:
        return spec
    hint = closest(name, [m.name for m in registry.pretrained])
    did_you_mean = f" Did you mean {hint!r}?" if hint else ""
    raise UserError(
        f"there is no pretrained generator called {name!r}.{did_you_mean} Pretrained "
        f"generators: {_available(registry)} (see 'ganframe models'). To use a checkpoint "
        "or a generator file, give its path."
    )


def resolve(ref: str | Path, registry: Registry | None = None
            ) -> tuple[Path | None, PretrainedSpec | None]:
    """(path, None) or (None, spec) for what ``ganframe sample REF`` means: an existing
    file or folder wins; then a pretrained name; a reference written as a path is a path
    (reading it says it is missing); anything else is an unknown name."""
    if isinstance(ref, Path):
        return ref, None
    text = str(ref)
    path = Path(text).expanduser()
    if path.exists() or looks_like_path(text):
        return path, None
    return None, find(text, registry or _registry())


def _registry() -> Registry:
    from ganframe.api import get_registry

    return get_registry()


@contextmanager
def _local_file(spec: PretrainedSpec) -> Iterator[Path]:
    """The registered file as a path on disk (a zipped package is extracted for the time
    being by importlib.resources)."""
    from importlib.resources import as_file

    target = spec.path
    if isinstance(target, str | os.PathLike):
        yield Path(target)
        return
    with as_file(target) as path:
        yield Path(path)


def _verify(spec: PretrainedSpec, path: Path) -> None:
    reinstall = (f"Reinstall the plugin that ships it (pip install --force-reinstall "
                 f"{spec.owner.dist if spec.owner and spec.owner.dist else spec.plugin}).")
    if not path.is_file():
        raise UserError(
            f"the file of pretrained generator {spec.name!r} (plugin {spec.plugin}) is "
            f"missing: {path}. The plugin was installed without its weights. {reinstall}"
        )
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise UserError(
            f"the file of pretrained generator {spec.name!r} (plugin {spec.plugin}), {path}, "
            f"does not match the sha256 the plugin registered for it (expected "
            f"{spec.sha256[:16]}..., found {actual[:16]}..., {path.stat().st_size} bytes): it "
            f"was truncated, damaged or replaced, so it is not loaded. {reinstall}"
        )


def load(name: str | PretrainedSpec, *, device: str = "cpu") -> LoadedCheckpoint:
    """The pretrained generator ``name``, its file checked against its sha256 first."""
    from ganframe.api import load_checkpoint
    from ganframe.export import export_info

    spec = name if isinstance(name, PretrainedSpec) else find(name)
    with _local_file(spec) as path:
        _verify(spec, path)
        loaded = load_checkpoint(path, device=device, known_good=True)
    if export_info(loaded.meta) is None:
        raise UserError(
            f"the file of pretrained generator {spec.name!r} (plugin {spec.plugin}) is a "
            "training checkpoint, not a generator file written by 'ganframe export'; the "
            "plugin should ship an exported file."
        )
    return loaded


def size_of(spec: PretrainedSpec) -> int | None:
    """The file's size in bytes; None when it is missing."""
    try:
        with _local_file(spec) as path:
            return path.stat().st_size
    except OSError:
        return None


def model_rows(registry: Registry | None = None) -> list[dict[str, Any]]:
    """One row per pretrained generator, for ``ganframe models`` (no file is read but for
    its size)."""
    registry = registry or _registry()
    return [
        {"name": m.name, "plugin": m.plugin, "version": m.version, "summary": m.summary,
         "bytes": size_of(m), "sha256": m.sha256, "card": dict(m.card)}
        for m in registry.pretrained
    ]


@dataclass
class Generator:
    """A generator ready to call: ``gen(16)`` draws 16 samples in the data's format with the
    recommended sampling options (the poet's temperature...), which keyword options
    override. What :func:`ganframe.api.pretrained` and :func:`ganframe.api.load_generator`
    return."""

    loaded: LoadedCheckpoint
    name: str
    #: The sampling options used unless a call gives its own, and where they come from.
    sampling: dict[str, Any] = field(default_factory=dict)
    sampling_source: str = ""
    card: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_loaded(cls, loaded: LoadedCheckpoint, name: str,
                    card: dict[str, Any] | None = None) -> Generator:
        from ganframe.export import recommended_sampling

        sampling, source = recommended_sampling(loaded)
        return cls(loaded, name, sampling, source, dict(card or {}))

    def __call__(self, n: int = 64, *, seed: int = 0,
                 labels: int | str | Sequence[int] | torch.Tensor | None = None,
                 **options: Any) -> torch.Tensor:
        from ganframe.api import sample

        return sample(self.loaded, n, seed=seed, labels=labels,
                      **{**self.sampling, **{k: v for k, v in options.items()
                                             if v is not None}})

    def save(self, samples: torch.Tensor, path: str | Path) -> Path:
        """Write samples in the format the file's suffix names (``.png``, ``.txt``...)."""
        from ganframe.api import write_samples

        return write_samples(samples, path, self.loaded)

    @property
    def module(self) -> torch.nn.Module:
        """The network itself (eval mode)."""
        return self.loaded.generator

    @property
    def data_kind(self) -> str:
        return self.loaded.data_kind

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.loaded.generator, "conditional", False))

    @property
    def class_names(self) -> list[str]:
        """The classes a conditional generator draws ([] for an unconditional one)."""
        if not self.conditional:
            return []
        k = int(getattr(self.loaded.generator, "num_classes", 0))
        names = self.loaded.info.get("class_names")
        return list(names) if isinstance(names, list) and len(names) == k else [
            str(i) for i in range(k)]

    def __repr__(self) -> str:
        gen = type(self.loaded.generator).__name__
        return f"Generator({self.name!r}, {gen}, data_kind={self.data_kind!r})"
