"""Startup wall time of the CLI against ``python -c "import torch"``.

``ganframe --help`` and ``ganframe list-plugins`` must not import torch or model code; this
benchmark shows it as a ratio measured in the same run (alternating repeats, median).

    python bench/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "ganframe --help": [sys.executable, "-m", "ganframe", "--help"],
    "ganframe list-plugins": [sys.executable, "-m", "ganframe", "list-plugins"],
    "ganframe list-plugins --json": [sys.executable, "-m", "ganframe", "list-plugins", "--json"],
}


def measure(repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, cmd in CASES.items():  # alternate, so drift hits every case alike
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    medians = measure(args.repeats)
    base = medians["python -c 'import torch' (baseline)"]
    print(f"{'command':34} {'median s':>9} {'ratio vs import torch':>22}")
    for name, t in medians.items():
        print(f"{name:34} {t:9.3f} {t / base:22.2f}")


if __name__ == "__main__":
    main()
