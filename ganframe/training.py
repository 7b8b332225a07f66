"""Moved: the loop now lives in :mod:`ganframe.loop` (trainer, events, callbacks, guards,
snapshot, resume, optim) and is built by :mod:`ganframe.assemble`.

These names stay importable from here for code written against ganframe 0.1; new code imports
them from their modules.
"""

from __future__ import annotations

from ganframe.loop.callbacks import SAMPLE_SEED_OFFSET, Progress
from ganframe.loop.data import DataStream
from ganframe.loop.optim import ema_update
from ganframe.loop.trainer import Interrupted, RunState, Trainer, TrainResult

__all__ = [
    "SAMPLE_SEED_OFFSET",
    "DataStream",
    "Interrupted",
    "Progress",
    "RunState",
    "TrainResult",
    "Trainer",
    "ema_update",
]
