"""bf16 on a CPU that only emulates it: a one-line warning, not a silent 5-hour run."""

from __future__ import annotations

import subprocess
import sys

import torch

from ganframe import device as dev


def test_warning_only_for_cpus_without_native_bf16(monkeypatch) -> None:
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    text = dev.bf16_warning(torch.device("cpu"))
    assert text is not None and 'train.precision = "fp32"' in text
    assert dev.bf16_warning(torch.device("cuda")) is None  # GPUs have their own bf16 units
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.bf16_warning(torch.device("cpu")) is None


def test_cli_prints_it_as_one_line_where_it_applies(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ganframe", "run", "gaussian-ring", "--set",
         'train.precision="bf16"', "--max-steps", "1", "-o", str(tmp_path / "r"), "-q"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "native bf16" in ln]
    if dev.cpu_has_native_bf16():
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith("warning: ")
        assert "Traceback" not in proc.stderr and "assemble.py" not in proc.stderr
