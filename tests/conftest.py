"""Test-wide settings.

Tests train tiny models: one intra-op thread is faster for them than two that contend with
each other (and with pytest's own work), and it keeps timings steady on 2-core CI machines.
Subprocesses inherit the variables. Helpers shared by test modules (``tests/tinydata.py``)
are importable as plain modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch

torch.set_num_threads(1)
