"""Running the poet's recurrent layers under CPU autocast on CPUs whose oneDNN cannot.

torch sends a CPU LSTM under bf16 autocast to oneDNN, which on CPUs without native bf16
(AVX512-BF16 or AMX, e.g. AMD EPYC with AVX2 only) fails with "could not create a primitive
descriptor for the LSTM forward propagation primitive". On such CPUs :func:`run_recurrent`
runs the layer in fp32 (autocast off for that call, inputs cast to float32); the rest of the
network stays in bf16. Whether the CPU can do it is probed once per autocast dtype with a tiny
LSTM, not by catching errors in every forward: that would hide real errors and cost a failed
oneDNN call per step. Where the probe passes, and on CUDA, the layer is called exactly as
before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: probe results per CPU autocast dtype (the probe runs at most once per dtype and process)
_SUPPORTED: dict[torch.dtype, bool] = {}


def _probe(dtype: torch.dtype) -> bool:
    """Whether a tiny LSTM forward and backward runs under CPU autocast to ``dtype``.

    The layer is built in a forked RNG so that probing draws no random numbers from the run
    (seeded runs stay bit-identical whether or not and when the probe ran), and with gradients
    on because the first call may come from sampling under ``no_grad``.
    """
    try:
        with (
            torch.random.fork_rng(devices=[]),
            torch.inference_mode(False),
            torch.enable_grad(),
        ):
            layer = nn.LSTM(4, 4, batch_first=True)
            x = torch.ones(2, 3, 4, requires_grad=True)
            with torch.autocast("cpu", dtype=dtype):
                out, _ = layer(x)
            out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def cpu_autocast_rnn_supported(dtype: torch.dtype) -> bool:
    """Whether this CPU runs recurrent layers under autocast to ``dtype``; probed once."""
    ok = _SUPPORTED.get(dtype)
    if ok is None:
        ok = _SUPPORTED[dtype] = _probe(dtype)
    return ok


def run_recurrent(layer: nn.RNNBase, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
    """``layer(x, state)``, in fp32 where CPU autocast is on and this CPU cannot run it.

    The fallback returns float32 outputs and states; the next autocast op (the output layer)
    casts them down again, and a float32 state fed back in stays float32.
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        if not cpu_autocast_rnn_supported(dtype):
            if state is not None:
                state = (
                    tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()
                )
            with torch.autocast("cpu", enabled=False):
                return layer(x.float(), state)
    return layer(x) if state is None else layer(x, state)
