"""The decoded-image cache: one safetensors file per (folder contents, transform).

Decoding thousands of PNGs or JPEGs costs seconds to minutes; reading one uint8 tensor back
costs milliseconds. The key is a sha256 of the folder's path, every file's relative path,
size and mtime, the class assignment, the transform and the skip setting, so any change to
the files or the recipe's ``size``/``channels`` makes a new entry and a stale one is never
used. The file holds ``images`` (uint8 N x C x S x S), ``labels`` (int64 N) and ``kept``
(int64 N: indices into the scanned file list; the others were skipped as bad), with the
skipped files' reasons in its JSON metadata. It is written to a temporary name and renamed,
so an interrupted write leaves no half file; one that fails to read is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ganframe.download import cache_dir

log = logging.getLogger("ganframe_images")

FORMAT = "ganframe-image-cache/1"


def cache_key(root: Path, rel_files: list[str], stats: list[tuple[int, int]],
              labels: list[int], class_names: list[str], transform_key: str,
              skip_bad: bool) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, str(root), transform_key, skip_bad, class_names]).encode())
    for rel, (size, mtime), label in zip(rel_files, stats, labels, strict=True):
        h.update(f"\0{rel}\0{size}\0{mtime}\0{label}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_path(key: str, folder: Path | None = None) -> Path:
    return (folder or cache_dir("images")) / f"{key[:32]}.safetensors"


def load(path: Path, n_files: int, shape: tuple[int, int]) -> dict[str, Any] | None:
    """The cached arrays and metadata, or None when missing or unusable (then rebuilt)."""
    if not path.is_file():
        return None
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in ("images", "labels", "kept")}
        images, labels, kept = tensors["images"], tensors["labels"], tensors["kept"]
        ok = (meta.get("format") == FORMAT and images.dtype == torch.uint8
              and images.dim() == 4 and tuple(images.shape[1:]) == (shape[0], shape[1], shape[1])
              and labels.shape == (images.shape[0],) and kept.shape == (images.shape[0],)
              and (kept.numel() == 0 or int(kept.max()) < n_files))
        if not ok:
            raise ValueError("contents do not match the folder")
        return {"images": images, "labels": labels, "kept": kept,
                "skipped": json.loads(meta.get("skipped", "[]")),
                "alpha": int(meta.get("alpha", "0"))}
    except Exception as exc:  # any damage: decode again rather than fail the run
        log.warning("image-folder: ignoring the unreadable cache file %s (%s); decoding again",
                    path, exc)
        return None


def save(path: Path, images: Any, labels: Any, kept: Any, skipped: list[str],
         alpha: int, source: Path) -> bool:
    """Write the cache atomically; False (with a warning) when the folder is not writable."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "skipped": json.dumps(skipped), "alpha": str(alpha),
            "source": str(source)}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file({"images": images.contiguous(), "labels": labels.contiguous(),
                   "kept": kept.contiguous()}, tmp, metadata=meta)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.warning("image-folder: could not write the decoded-image cache %s (%s); the next "
                    "run decodes the images again. Set GANFRAME_CACHE to a writable folder.",
                    path, exc.strerror or exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
