"""What the checkpoint checksums cost: saving and reading the DCGAN run state (generator,
critic, EMA and both Adam optimisers after one update, as in ``checkpoint_io.py``) with and
without the per-tensor CRC-32 that :func:`ganframe.checkpoint.save_checkpoint` writes and
:func:`ganframe.checkpoint.read_checkpoint` verifies.

Run by hand (not part of ``bench/run.py``)::

    python bench/checkpoint_checksum.py [--repeats 15] [--device cpu]

The four operations alternate, repeated; medians are printed with the file size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from checkpoint_io import _run_state, _sync
from measure import median


def measure(repeats: int, device: str) -> dict[str, float]:
    from ganframe.checkpoint import read_checkpoint, save_checkpoint

    dev = torch.device(device)
    state = _run_state(dev)
    folder = Path(tempfile.mkdtemp(prefix="ganframe-bench-crc-"))
    with_crc, without = folder / "with.safetensors", folder / "without.safetensors"

    ops = {
        "save_with": lambda: save_checkpoint(with_crc, **state, meta={"bench": 1}),
        "save_without": lambda: save_checkpoint(without, **state, meta={"bench": 1},
                                                checksums=False),
        "read_with": lambda: read_checkpoint(with_crc),
        "read_without": lambda: read_checkpoint(without, verify=False),
    }
    times: dict[str, list[float]] = {k: [] for k in ops}
    try:
        for fn in ops.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in ops.items():
                _sync(dev)
                t0 = time.perf_counter()
                fn()
                _sync(dev)
                times[name].append(time.perf_counter() - t0)
        size = with_crc.stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out = {f"{k}_ms": median(v) * 1000 for k, v in times.items()}
    out["file_mb"] = size / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    r = measure(args.repeats, args.device)
    print(f"DCGAN run state, {r['file_mb']:.1f} MB, {args.device}, median of {args.repeats}:")
    for op in ("save", "read"):
        a, b = r[f"{op}_with_ms"], r[f"{op}_without_ms"]
        print(f"  {op}: {b:.1f} ms without checksums, {a:.1f} ms with "
              f"(+{a - b:.1f} ms, {100 * (a - b) / b:+.0f}%)")


if __name__ == "__main__":
    main()
