"""The streaming safetensors writer: every file it writes must read back, bit for bit,
through the safetensors library itself."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

from ganframe.safetensors_write import DTYPES, layout


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata=None) -> Path:
    with path.open("wb") as f:
        layout(tensors, metadata).write_to(f)
    return path


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bytes (NaNs and -0.0 included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8),
                       b.contiguous().reshape(-1).view(torch.uint8))


def test_every_dtype_round_trips_through_the_library(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for dtype in DTYPES:
        raw = torch.randint(0, 256, (3, 5 * torch.tensor([], dtype=dtype).element_size()),
                            dtype=torch.uint8, generator=gen)
        tensors[f"t_{str(dtype).removeprefix('torch.')}"] = raw.view(dtype)
    path = _write(tmp_path / "all.safetensors", tensors, {"note": "ünïcode ✓"})
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"note": "ünïcode ✓"}
        assert sorted(f.keys()) == sorted(tensors)
        for name, t in tensors.items():
            assert _same(f.get_tensor(name), t), name


def test_odd_shapes_views_and_shared_storage(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.zeros(0, 7),
        "transposed": base.t(),                  # not contiguous: copied
        "column": base[:, 2],                    # strided view into shared storage
        "row": base[1],                          # contiguous view with a storage offset
        "tied_a": base,
        "tied_b": base,                          # the same tensor twice (tied weights)
        "flag": torch.tensor([True, False, True]),
        "grad": torch.ones(2, requires_grad=True) * 2,
    }
    path = _write(tmp_path / "odd.safetensors", tensors)
    loaded = safetensors.torch.load_file(str(path))
    assert sorted(loaded) == sorted(tensors)
    for name, t in tensors.items():
        assert _same(loaded[name], t.detach()), name


def test_layout_matches_the_format(tmp_path: Path) -> None:
    """Header length prefix, 8-byte alignment and contiguous byte ranges, read by hand."""
    tensors = {"a": torch.ones(3, dtype=torch.float16), "b": torch.arange(5, dtype=torch.int64)}
    buf = io.BytesIO()
    plan = layout(tensors, {"k": "v"})
    plan.write_to(buf)
    data = buf.getvalue()
    (n,) = struct.unpack("<Q", data[:8])
    assert n == plan.header_length and n % 8 == 0
    header = json.loads(data[8 : 8 + n])
    assert header["__metadata__"] == {"k": "v"}
    assert header["a"] == {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]}
    assert header["b"] == {"dtype": "I64", "shape": [5], "data_offsets": [6, 46]}
    assert len(data) == 8 + n + 46
    assert data[8 + n + 6 :] == tensors["b"].numpy().tobytes()
    # The library's own reader accepts the bytes too.
    assert _same(safetensors.torch.load(data)["a"], tensors["a"])


def test_same_content_as_the_library_writer(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    tensors = {f"w{i}": torch.randn(i + 1, 3, generator=gen) for i in range(6)}
    ours = safetensors.torch.load_file(str(_write(tmp_path / "ours.safetensors", tensors)))
    theirs_path = tmp_path / "theirs.safetensors"
    safetensors.torch.save_file(tensors, str(theirs_path))
    theirs = safetensors.torch.load_file(str(theirs_path))
    assert ours.keys() == theirs.keys()
    assert all(_same(ours[k], theirs[k]) for k in ours)
    assert (tmp_path / "ours.safetensors").stat().st_size == theirs_path.stat().st_size


def test_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(TypeError, match="complex64"):
        layout({"z": torch.zeros(2, dtype=torch.complex64)}, None)
    with pytest.raises(ValueError, match="reserved"):
        layout({"__metadata__": torch.zeros(1)}, None)
