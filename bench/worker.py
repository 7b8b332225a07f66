"""Runs one benchmark case in this (fresh) process and prints one ``BENCH-RESULT`` line.

    python bench/worker.py CASE '{"json": "arguments"}'

``bench/run.py`` starts one worker per case and repeat, so that every training benchmark
has its own peak resident memory and no case inherits another's warm caches.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit, gpu_peak_mb


def run_case(case: str, args: dict[str, Any]) -> dict[str, Any]:
    if case == "dcgan-paired":
        from dcgan_loops import paired

        return paired(args["blocks"], args["block_steps"], args["warmup"], args["device"])
    if case == "mle-paired":
        from poet_loops import mle_paired

        return mle_paired(args["blocks"], args["block_steps"], args["warmup"], args["device"])
    if case == "dcgan-ganframe":
        from dcgan_loops import ganframe_loop

        return ganframe_loop(args["steps"], args["warmup"], args["device"])
    if case in ("dcgan-hand", "dcgan-dataloader"):
        from dcgan_loops import hand_loop

        pipeline = "tensor" if case == "dcgan-hand" else "dataloader"
        return hand_loop(args["steps"], args["warmup"], args["device"], pipeline)
    if case == "mle-ganframe":
        from poet_loops import mle_ganframe

        return mle_ganframe(args["steps"], args["warmup"], args["device"])
    if case == "mle-hand":
        from poet_loops import mle_hand

        return mle_hand(args["steps"], args["warmup"], args["device"])
    if case in ("seqgan-batched", "seqgan-batched_bf16", "seqgan-naive"):
        from poet_loops import seqgan_update

        return seqgan_update(
            case.split("-")[1], args["batch"], args["rollouts"], args["device"]
        )
    if case == "bleu":
        from bleu_vs_nltk import compare

        return compare(args["poems"], args["repeats"])
    if case == "checkpoint":
        from checkpoint_io import compare

        return compare(args["repeats"], args["device"])
    if case == "cli-throughput":
        from cli_throughput import measure_cli

        return measure_cli(args["argv"], args["batch"], args["world"], args["skip_rows"])
    raise SystemExit(f"unknown benchmark case {case!r}")


def main() -> None:
    case = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = run_case(case, args)
    gpu = gpu_peak_mb()
    if gpu is not None:
        result["gpu_peak_mb"] = gpu
    emit(result)


if __name__ == "__main__":
    main()
