"""Checkpoint files: exact round trips, atomic writes, and readable errors for bad files."""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

import ganframe.checkpoint as ckmod
from ganframe import safetensors_write
from ganframe.checkpoint import (
    FORMAT_VERSION,
    MAX_METADATA_BYTES,
    CheckpointDir,
    module_tensors,
    read_checkpoint,
    restore_module,
    restore_optimizer,
    restore_rng,
    save_checkpoint,
)
from ganframe.errors import UserError


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)) for _ in range(n)]


def _train(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    model.train()
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _adam(model: nn.Module, lr: float = 1e-2) -> torch.optim.Adam:
    return torch.optim.Adam(
        model.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=1e-3, amsgrad=True
    )


def _save_small(path: Path, **meta) -> Path:
    return save_checkpoint(
        path, modules={"generator": _model(0)}, optimizers={}, meta=meta, rng=False
    )


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------- exact round trips


def test_adam_round_trip_continues_bit_identically(tmp_path: Path) -> None:
    original = _model(0)
    opt = _adam(original)
    _train(original, opt, _batches(3, seed=1))
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        modules={"generator": original},
        optimizers={"generator": opt},
        meta={"step": 3, "note": "hello"},
    )

    ckpt = read_checkpoint(path)
    assert ckpt.meta["step"] == 3 and ckpt.meta["note"] == "hello"
    assert ckpt.meta["format"] == FORMAT_VERSION and ckpt.meta["torch"] == torch.__version__

    restored = _model(123)  # different initial weights
    restored_opt = _adam(restored, lr=0.5)  # hyper-parameters must come from the checkpoint
    restore_module(ckpt, "generator", restored)
    restore_optimizer(ckpt, "generator", restored_opt)
    assert restored_opt.param_groups[0]["lr"] == pytest.approx(1e-2)
    assert restored_opt.param_groups[0]["betas"] == (0.5, 0.9)
    for a, b in zip(original.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    more = _batches(4, seed=2)
    _train(original, opt, more)
    _train(restored, restored_opt, more)
    for (name, a), b in zip(
        original.state_dict().items(), restored.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # The continuation really moved the weights (so the equality above is not vacuous).
    assert not torch.equal(original[0].weight, ckpt.tensors["generator.0.weight"])


def test_adam_step_counter_matters(tmp_path: Path) -> None:
    """Guards the lockstep test: a fresh optimizer state would diverge from the original."""
    original = _model(0)
    opt = _adam(original)
    _train(original, opt, _batches(3, seed=1))
    path = save_checkpoint(
        tmp_path / "c.safetensors", modules={"g": original}, optimizers={}, meta={}
    )
    restored = _model(5)
    restored_opt = _adam(restored)
    restore_module(read_checkpoint(path), "g", restored)
    more = _batches(2, seed=2)
    _train(original, opt, more)
    _train(restored, restored_opt, more)
    assert not torch.equal(original[0].weight, restored[0].weight)


class _CountingSGD(torch.optim.Optimizer):
    """Keeps an int counter and a tensor buffer in its state, like older optimizers did."""

    def __init__(self, params, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["count"] = state.get("count", 0) + 1
                buf = state.setdefault("buf", torch.zeros_like(p))
                buf.mul_(0.5).add_(p.grad)
                p.add_(buf, alpha=-group["lr"] / state["count"])


def test_non_tensor_optimizer_state_and_param_groups(tmp_path: Path) -> None:
    original = _model(0)
    head = list(original[3].parameters())
    body = [p for p in original.parameters() if all(p is not h for h in head)]
    opt = _CountingSGD([{"params": body}, {"params": head, "lr": 0.05}])
    _train(original, opt, _batches(3, seed=1))
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        modules={"critic": original},
        optimizers={"critic": opt},
        meta={},
    )
    ckpt = read_checkpoint(path)
    assert ckpt.meta["optimizers"]["critic"]["state"]["0"]["values"]["count"] == 3

    restored = _model(9)
    h2 = list(restored[3].parameters())
    b2 = [p for p in restored.parameters() if all(p is not h for h in h2)]
    restored_opt = _CountingSGD([{"params": b2}, {"params": h2}])
    restore_module(ckpt, "critic", restored)
    restore_optimizer(ckpt, "critic", restored_opt)
    assert restored_opt.param_groups[1]["lr"] == 0.05
    assert all(restored_opt.state[p]["count"] == 3 for p in restored.parameters())
    more = _batches(2, seed=3)
    _train(original, opt, more)
    _train(restored, restored_opt, more)
    for a, b in zip(original.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)


def test_tied_and_non_contiguous_tensors_are_saved(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3, bias=False)
            self.b = nn.Linear(3, 3, bias=False)
            self.b.weight = self.a.weight
            self.register_buffer("t", torch.arange(6.0).reshape(2, 3).t())  # non-contiguous

    src = Tied()
    path = save_checkpoint(
        tmp_path / "t.safetensors",
        modules={"ema": src},
        optimizers={},
        meta={},
        extra_tensors={"objective.baseline": torch.tensor([1.5])},
        rng=False,
    )
    ckpt = read_checkpoint(path)
    assert set(module_tensors(ckpt, "ema")) == {"a.weight", "b.weight", "t"}
    assert torch.equal(ckpt.tensors["objective.baseline"], torch.tensor([1.5]))
    dst = Tied()
    restore_module(ckpt, "ema", dst)
    assert torch.equal(dst.a.weight, src.a.weight) and dst.a.weight is dst.b.weight
    assert torch.equal(dst.t, src.t)


def test_extra_tensor_names_must_not_collide(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collides"):
        save_checkpoint(
            tmp_path / "x.safetensors",
            modules={"generator": _model(0)},
            optimizers={},
            meta={},
            extra_tensors={"generator.extra": torch.zeros(1)},
        )
    assert not list(tmp_path.iterdir())


def test_rng_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    np.random.randn()  # leaves a cached Gaussian in numpy's legacy state
    path = save_checkpoint(tmp_path / "r.safetensors", modules={}, optimizers={}, meta={})

    def draw():
        return torch.rand(5), random.random(), np.random.randn(3)

    after_save = draw()
    draw()  # move every generator on
    restore_rng(read_checkpoint(path))
    after_restore = draw()
    assert torch.equal(after_save[0], after_restore[0])
    assert after_save[1] == after_restore[1]
    assert np.array_equal(after_save[2], after_restore[2])


def test_restore_rng_without_state_is_a_user_error(tmp_path: Path) -> None:
    path = _save_small(tmp_path / "n.safetensors")
    with pytest.raises(UserError, match="random number generator"):
        restore_rng(read_checkpoint(path))


# ----------------------------------------------------------------- mismatches


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    small = nn.Sequential(nn.Linear(100, 64))
    path = save_checkpoint(
        tmp_path / "x.safetensors", modules={"generator": small}, optimizers={}, meta={}
    )
    big = nn.Sequential(nn.Linear(100, 128))
    with pytest.raises(UserError) as info:
        restore_module(read_checkpoint(path), "generator", big)
    text = str(info.value)
    assert str(path) in text
    assert "generator.0.weight has shape (64, 100) in the checkpoint but (128, 100)" in text
    assert "generator.0.bias" in text


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "x.safetensors",
        modules={"critic": nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))},
        optimizers={},
        meta={},
    )
    ckpt = read_checkpoint(path)
    with pytest.raises(UserError) as info:
        restore_module(ckpt, "critic", nn.Sequential(nn.Linear(2, 2)))
    assert "critic.1.weight is in the checkpoint but not in the model" in str(info.value)
    with pytest.raises(UserError) as info:
        restore_module(
            ckpt, "critic", nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1), nn.Linear(1, 1))
        )
    assert "critic.2.weight is missing from the checkpoint" in str(info.value)
    with pytest.raises(UserError, match="no 'ema' tensors"):
        restore_module(ckpt, "ema", nn.Linear(2, 2))


def test_optimizer_mismatch_is_a_user_error(tmp_path: Path) -> None:
    model = _model(0)
    opt = _adam(model)
    _train(model, opt, _batches(1, seed=0))
    path = save_checkpoint(
        tmp_path / "o.safetensors",
        modules={"generator": model},
        optimizers={"generator": opt},
        meta={},
    )
    ckpt = read_checkpoint(path)
    wider = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(UserError, match=r"shape \(8, 4\) in the checkpoint but \(16, 4\)"):
        restore_optimizer(ckpt, "generator", _adam(wider))
    with pytest.raises(UserError, match="6 parameters in the checkpoint but 2"):
        restore_optimizer(ckpt, "generator", _adam(nn.Linear(4, 2)))
    with pytest.raises(UserError, match="holds Adam state but the recipe builds SGD"):
        restore_optimizer(ckpt, "generator", torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(UserError, match="no state for the critic optimizer"):
        restore_optimizer(ckpt, "critic", _adam(model))


# ----------------------------------------------------------------- bad files


def _assert_user_error(path: Path, *fragments: str) -> str:
    try:
        read_checkpoint(path)
    except UserError as exc:
        text = str(exc)
    else:  # pragma: no cover - the assertion below explains the failure
        pytest.fail(f"{path} was read without error")
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_truncated_files_are_user_errors(tmp_path: Path) -> None:
    good = _save_small(tmp_path / "good.safetensors")
    data = good.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    cuts = [0, 4, 8, 9, 8 + header_len // 2, 8 + header_len, 8 + header_len + 3, len(data) - 1]
    for cut in cuts:
        bad = tmp_path / f"cut-{cut}.safetensors"
        bad.write_bytes(data[:cut])
        _assert_user_error(bad)
    # the untouched file still reads, so the checks are not simply rejecting everything
    assert read_checkpoint(good).meta["format"] == FORMAT_VERSION


@pytest.mark.parametrize("size", [3, 8, 100, 5000])
def test_random_bytes_are_user_errors(tmp_path: Path, size: int) -> None:
    bad = tmp_path / "noise.safetensors"
    bad.write_bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())
    _assert_user_error(bad)


def test_small_header_length_with_garbage_json(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(struct.pack("<Q", 6) + b"\xff{not}" + b"\0" * 10)
    _assert_user_error(bad, "not valid safetensors JSON")


def test_inconsistent_tensor_entry_is_a_user_error(tmp_path: Path) -> None:
    """Passes the cheap header checks; the safetensors loader's own error must be wrapped."""
    header = {
        "__metadata__": {"ganframe": json.dumps({"format": FORMAT_VERSION})},
        "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]},  # 3 floats need 12
    }
    raw = json.dumps(header).encode()
    bad = tmp_path / "inconsistent.safetensors"
    bad.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    _assert_user_error(bad, "could not be loaded")


def test_torch_archive_and_serialised_objects_get_a_hint(tmp_path: Path) -> None:
    zip_like = tmp_path / "model.pt"
    zip_like.write_bytes(b"PK\x03\x04" + bytes(range(200)))
    _assert_user_error(zip_like, "torch.save() archive")
    obj = tmp_path / "model.pkl"
    obj.write_bytes(b"\x80\x04\x95" + bytes(range(200)))
    _assert_user_error(obj, "object-serialisation")


def test_foreign_safetensors_files_are_user_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(plain))
    _assert_user_error(plain, "not a ganframe checkpoint")
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    _assert_user_error(other, "not a ganframe checkpoint")
    broken = tmp_path / "broken.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(broken), metadata={"ganframe": "{"})
    _assert_user_error(broken, "not a JSON object")


def test_future_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    future = tmp_path / "future.safetensors"
    meta = json.dumps({"format": FORMAT_VERSION + 1})
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(future), metadata={"ganframe": meta})
    _assert_user_error(future, "Upgrade ganframe", f"format {FORMAT_VERSION + 1}")


def test_oversized_header_length_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "huge.safetensors"
    bad.write_bytes(struct.pack("<Q", MAX_METADATA_BYTES + 1) + b"{}" + b" " * 64)
    _assert_user_error(bad, "header")


def test_missing_file_and_folder_are_user_errors(tmp_path: Path) -> None:
    _assert_user_error(tmp_path / "nope.safetensors", "does not exist")
    _assert_user_error(tmp_path, "folder")


# ----------------------------------------------------------------- atomic writes


def _boom(*args, **kwargs):
    raise OSError("disk on fire")


def _half_write(self, f):
    """The disk fills up halfway through the tensor bytes."""
    f.write(self.header)
    f.write(memoryview(self.parts[0].numpy())[: self.parts[0].numel() // 2])
    raise OSError("disk on fire")


@pytest.mark.parametrize(
    "target",
    [(os, "replace", _boom), (os, "fsync", _boom),
     (safetensors_write.Layout, "write_to", _half_write)],
    ids=lambda t: t[1],
)
def test_failed_save_leaves_previous_file_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target
) -> None:
    path = _save_small(tmp_path / "c.safetensors", version=1)
    before = path.read_bytes()
    monkeypatch.setattr(*target)
    with pytest.raises(OSError, match="disk on fire"):
        _save_small(path, version=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []
    assert read_checkpoint(path).meta["version"] == 1


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    path = _save_small(tmp_path / "c.safetensors", version=1)
    _save_small(path, version=2)
    assert read_checkpoint(path).meta["version"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


# ----------------------------------------------------------------- run folders


def _dir_save(cdir: CheckpointDir, step: int) -> Path:
    return cdir.save(
        step, modules={"generator": _model(step)}, optimizers={}, meta={"step": step}, rng=False
    )


def test_keep_last_rotation(tmp_path: Path) -> None:
    cdir = CheckpointDir(tmp_path / "checkpoints", keep_last=2)
    for step in range(1, 6):
        _dir_save(cdir, step)
    assert [p.name for p in cdir.steps()] == [
        "step-00000004.safetensors",
        "step-00000005.safetensors",
    ]
    last = cdir.folder / "last.safetensors"
    assert not last.is_symlink()
    # an independent file, so rewriting one name in place cannot corrupt the other
    assert os.stat(last).st_ino != os.stat(cdir.steps()[-1]).st_ino
    assert last.read_bytes() == cdir.steps()[-1].read_bytes()
    assert read_checkpoint(last).meta["step"] == 5
    assert cdir.latest() == last
    assert _temp_files(cdir.folder) == []


def test_keep_last_zero_keeps_everything(tmp_path: Path) -> None:
    cdir = CheckpointDir(tmp_path, keep_last=0)
    for step in (10, 2, 30):
        _dir_save(cdir, step)
    assert [p.name for p in cdir.steps()] == [
        "step-00000002.safetensors",
        "step-00000010.safetensors",
        "step-00000030.safetensors",
    ]
    assert read_checkpoint(cdir.latest()).meta["step"] == 30  # last written, not highest


def test_last_survives_rotation_of_its_step_file(tmp_path: Path) -> None:
    cdir = CheckpointDir(tmp_path, keep_last=1)
    _dir_save(cdir, 1)
    _dir_save(cdir, 2)
    (tmp_path / "step-00000002.safetensors").unlink()
    assert read_checkpoint(tmp_path / "last.safetensors").meta["step"] == 2


def test_latest_ignores_temp_files_and_falls_back_from_corrupt_last(tmp_path: Path) -> None:
    cdir = CheckpointDir(tmp_path, keep_last=0)
    assert cdir.latest() is None
    for step in (1, 2, 3):
        _dir_save(cdir, step)
    # A half-written newer save, and a complete one left under a temp name.
    (tmp_path / ".step-00000009.safetensors.abc123.tmp").write_bytes(b"\0" * 4)
    (tmp_path / ".step-00000010.safetensors.def456.tmp").write_bytes(
        (tmp_path / "step-00000003.safetensors").read_bytes()
    )
    assert cdir.latest() == tmp_path / "last.safetensors"

    (tmp_path / "last.safetensors").write_bytes(b"garbage")
    assert cdir.latest() == tmp_path / "step-00000003.safetensors"

    data = (tmp_path / "step-00000003.safetensors").read_bytes()
    # cut by one byte: only the tensor data is short, the header alone looks fine
    (tmp_path / "step-00000003.safetensors").write_bytes(data[:-1])
    assert cdir.latest() == tmp_path / "step-00000002.safetensors"
    assert [p.name for p in cdir.steps()] == [
        "step-00000001.safetensors",
        "step-00000002.safetensors",
        "step-00000003.safetensors",
    ]


# ----------------------------------------------------------------- hygiene


def test_module_never_uses_code_executing_deserialisers() -> None:
    source = Path(ckmod.__file__).read_text(encoding="utf-8")
    assert "pickle" not in source
    assert "torch.load" not in source
