"""CIFAR-10 and CIFAR-100 from their *binary* distribution (never the pickled python one).

The python version of the archives holds pickles, and unpickling runs code chosen by whoever
made the file, so it is never read. The binary version is fixed-size records: CIFAR-10
``<label byte><3072 bytes>``, CIFAR-100 ``<coarse byte><fine byte><3072 bytes>``, the image
as red, green and blue 32x32 planes; class names are text files beside them.

Where the files are looked for, in order: the recipe's ``root``, ``$GANFRAME_DATA/cifar10``
(``cifar100``), the download cache (``$GANFRAME_CACHE/cifar10`` or
``~/.cache/ganframe/cifar10``). In each, the extracted folder (``cifar-10-batches-bin/``),
the ``.bin`` files themselves, or the ``.tar.gz`` archive (extracted there on first use).
Missing everywhere, the archive is downloaded with :func:`ganframe.download.fetch_file`
(resumable, md5-checked) into the cache, or into ``root`` when one is given.

Extraction never trusts the archive's paths: only the expected member names are read, only
regular files, and each is written under its own base name into the target folder, so a
crafted archive cannot write anywhere else (no ``../``, absolute paths or links).
"""

from __future__ import annotations

import contextlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganframe.download import cache_dir, fetch_file
from ganframe.errors import UserError

RECORD_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class Variant:
    name: str  #: "cifar10"
    archive: str  #: file name of the archive
    folder: str  #: top folder inside the archive
    md5: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_bytes: int  #: bytes before the pixels of a record
    names_files: tuple[str, ...]  #: class-name files: (fine,) or (fine, coarse)

    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, *self.names_files)


VARIANTS: dict[str, Variant] = {
    "cifar10": Variant(
        "cifar10", "cifar-10-binary.tar.gz", "cifar-10-batches-bin",
        "c32a1d4ab5d03f1284b67883e8d87530",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",), 1,
        ("batches.meta.txt",)),
    "cifar100": Variant(
        "cifar100", "cifar-100-binary.tar.gz", "cifar-100-binary",
        "03b5dce01913d631647c71ecec9e9cb8", ("train.bin",), ("test.bin",), 2,
        ("fine_label_names.txt", "coarse_label_names.txt")),
}

#: Base URLs tried in order (each serves the archive by its name); tests use 127.0.0.1.
MIRRORS: list[str] = ["https://www.cs.toronto.edu/~kriz/"]


def search_folders(v: Variant, root: Path | None, data_root: Path | None) -> list[Path]:
    bases = [root] if root is not None else []
    data = data_root if data_root is not None else os.environ.get("GANFRAME_DATA") or None
    if data:
        bases.append(Path(data).expanduser() / v.name)
    bases.append(cache_dir(v.name))
    out: list[Path] = []
    for b in bases:
        for f in (b / v.folder, b):
            if f not in out:
                out.append(f)
    return out


def _complete(folder: Path, v: Variant) -> bool:
    return all((folder / n).is_file() for n in v.files())


def locate(v: Variant, root: Path | None, *, data_root: Path | None, download: bool,
           progress: bool = True) -> Path:
    """The folder holding the variant's ``.bin`` and name files (extracting or downloading
    the archive if needed)."""
    folders = search_folders(v, root, data_root)
    for folder in folders:
        if _complete(folder, v):
            return folder
    for folder in folders:
        if (folder / v.archive).is_file():
            return extract(folder / v.archive, folder / v.folder, v)
    target = root if root is not None else cache_dir(v.name)
    if not download:
        raise UserError(
            f"{v.name}: the binary files were not found; searched "
            f"{', '.join(str(f) for f in folders)}. Put {v.archive} (the binary version, not "
            f"the python one) into {target}, or set GANFRAME_DATA to a folder with a "
            f"{v.name}/ subfolder holding it, or set download = true in [data].")
    hint = (f"If this machine is offline, download {v.archive} (the binary version) elsewhere "
            f"and put it into {target}, or into $GANFRAME_DATA/{v.name}/. A download cut "
            "short resumes where it stopped on the next run.")
    archive = fetch_file([m + v.archive for m in MIRRORS], target / v.archive, md5=v.md5,
                         label=f"{v.name} archive {v.archive}", progress=progress, hint=hint)
    return extract(archive, target / v.folder, v)


def extract(archive: Path, dest: Path, v: Variant) -> Path:
    """Write the expected members of ``archive`` into ``dest`` by base name; returns dest."""
    wanted = {f"{v.folder}/{n}": n for n in v.files()}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None:
                    continue
                if not member.isreg():
                    raise UserError(f"{archive}: member {member.name} is not a regular file; "
                                    "this is not the CIFAR binary archive.")
                src = tar.extractfile(member)
                assert src is not None
                tmp = dest / f".{name}.tmp"
                with src, tmp.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.replace(tmp, dest / name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive}: cannot extract the {v.name} archive ({exc}). Delete it "
                        "to download it again.") from None
    missing = [n for n in v.files() if not (dest / n).is_file()]
    if missing:
        raise UserError(f"{archive}: the archive lacks {', '.join(missing)}; it is not the "
                        f"{v.name} binary archive ({v.archive}). Delete it to download it "
                        "again (the python version of CIFAR is never read: it is pickled).")
    return dest


def read_records(path: Path, v: Variant) -> tuple[Any, Any, Any]:
    """(uint8 images N x 3 x 32 x 32, fine labels, coarse labels or None) of one .bin file."""
    import numpy as np

    record = v.label_bytes + RECORD_PIXELS
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % record:
        raise UserError(f"{path}: {data.size} bytes is not a whole number of {v.name} records "
                        f"({record} bytes each); the file is damaged or not from the binary "
                        "archive. Delete it to download it again.")
    rows = data.reshape(-1, record)
    images = rows[:, v.label_bytes:].reshape(-1, 3, 32, 32)
    fine = rows[:, v.label_bytes - 1]
    coarse = rows[:, 0] if v.label_bytes == 2 else None
    return images, fine, coarse


def class_names(path: Path) -> list[str]:
    with contextlib.suppress(UnicodeDecodeError):
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        return [n for n in names if n]
    raise UserError(f"{path}: not a text file of class names.")


def build_cifar(config: Any, ctx: Any, variant: str) -> Any:
    """The dataset for ``cifar10`` / ``cifar100`` (config: ``CifarConfig``)."""
    import numpy as np
    import torch

    from ganframe_images.tensorset import ImageTensorDataset

    v = VARIANTS[variant]
    root = ctx.data_path(config, "root") if hasattr(ctx, "data_path") and config.root else None
    folder = locate(v, root, data_root=getattr(ctx, "data_root", None), download=config.download)
    coarse = getattr(config, "labels", "fine") == "coarse"
    parts = [read_records(folder / n, v) for n in (v.train if config.split == "train"
                                                   else v.test)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[2] if coarse else p[1] for p in parts]).astype(np.int64)
    names = class_names(folder / v.names_files[1 if coarse else 0])
    if labels.size and int(labels.max()) >= len(names):
        raise UserError(f"{folder}: label {int(labels.max())} but only {len(names)} class "
                        "names; the files do not belong together. Delete them to download "
                        "the archive again.")
    if config.limit is not None:
        images, labels = images[: config.limit], labels[: config.limit]
    return ImageTensorDataset(
        torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels),
        name=variant, class_names=names, hflip=config.hflip,
        extra_info={"split": config.split, "source": str(folder)})


def build_cifar10(config: Any, ctx: Any) -> Any:
    return build_cifar(config, ctx, "cifar10")


def build_cifar100(config: Any, ctx: Any) -> Any:
    return build_cifar(config, ctx, "cifar100")
