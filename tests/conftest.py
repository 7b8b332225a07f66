"""Test-wide settings.

Tests train tiny models: one intra-op thread is faster for them than two that contend with
each other (and with pytest's own work), and it keeps timings steady on 2-core CI machines.
Subprocesses inherit the variables.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
