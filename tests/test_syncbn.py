"""Global-batch batch norm: one process is plain batch norm; two gloo processes give exactly
what batch norm computes on the concatenated batch, forward, backward and double backward."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ganframe.syncbn import GlobalBatchNorm, convert


def _pair(seed: int = 0) -> tuple[nn.BatchNorm2d, GlobalBatchNorm]:
    torch.manual_seed(seed)
    plain = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-1, 1)
    ours, replaced = convert(nn.Sequential(nn.BatchNorm2d(3, momentum=0.3)))
    assert replaced == 1
    ours[0].load_state_dict(plain.state_dict())
    return plain, ours[0]


def test_one_process_is_plain_batch_norm():
    plain, ours = _pair()
    x = torch.randn(6, 3, 4, 4) * 2 + 3
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = plain(xa), ours(xb)
    torch.testing.assert_close(yb, ya, rtol=0, atol=0)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=0, atol=0)
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, rtol=0, atol=0)
    for key, value in plain.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_convert_keeps_parameters_buffers_and_names():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4, 5), nn.Sequential(nn.BatchNorm1d(5)))
    weight = net[1].weight
    keys = list(net.state_dict())
    net.eval()
    converted, replaced = convert(net)
    assert converted is net and replaced == 2
    assert isinstance(net[1], GlobalBatchNorm) and isinstance(net[5][0], GlobalBatchNorm)
    assert net[1].weight is weight  # an optimiser built before still updates it
    assert list(net.state_dict()) == keys  # checkpoints load either way
    assert not net[1].training  # the mode is kept
    assert convert(net)[1] == 0  # converting twice changes nothing


WORKER = """
import os, sys
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from ganframe.syncbn import convert
from torch import nn

rank = int(os.environ["RANK"])
dist.init_process_group("gloo", rank=rank, world_size=2)
torch.manual_seed(0)
x_all = torch.randn(10, 3, 4, 4) * 3 + 5  # far from zero: the variance must stay exact
c_all = torch.randn(10, 3, 4, 4)
layer = convert(nn.Sequential(nn.BatchNorm2d(3, momentum=0.3)))[0][0]
with torch.no_grad():
    layer.weight.copy_(torch.tensor([0.5, 1.0, 1.5]))
    layer.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
part = slice(0, 4) if rank == 0 else slice(4, 10)  # unequal shares of the global batch
x = x_all[part].clone().requires_grad_()
y = layer(x)
loss = (y * c_all[part]).sum()
(g,) = torch.autograd.grad(loss, x, create_graph=True)  # as a gradient penalty does
(loss + g.square().sum()).backward()
save_file({"y": y.detach(), "x_grad": x.grad, "w_grad": layer.weight.grad,
           "b_grad": layer.bias.grad, "mean": layer.running_mean, "var": layer.running_var},
          sys.argv[1])
dist.barrier()
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_compute_batch_norm_of_the_global_batch(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"rank{r}.safetensors")],
                         env={**env, "RANK": str(r)}, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:  # a worker that failed leaves its partner waiting in a collective
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))

    # The same computation in one process on the whole batch.
    torch.manual_seed(0)
    x_all = torch.randn(10, 3, 4, 4) * 3 + 5
    c_all = torch.randn(10, 3, 4, 4)
    bn = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 1.5]))
        bn.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    x = x_all.clone().requires_grad_()
    y = bn(x)
    loss = (y * c_all).sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (loss + g.square().sum()).backward()

    close = {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]), y.detach(), **close)
    torch.testing.assert_close(torch.cat([r0["x_grad"], r1["x_grad"]]), x.grad, **close)
    # Each process holds its own share of the parameter gradients (the loop averages them).
    torch.testing.assert_close(r0["w_grad"] + r1["w_grad"], bn.weight.grad, **close)
    torch.testing.assert_close(r0["b_grad"] + r1["b_grad"], bn.bias.grad, **close)
    for r in (r0, r1):
        torch.testing.assert_close(r["mean"], bn.running_mean, **close)
        torch.testing.assert_close(r["var"], bn.running_var, **close)
    # ...which is not what batch norm of a process's own share gives.
    own = nn.BatchNorm2d(3, momentum=0.3)
    own.load_state_dict({k: v for k, v in bn.state_dict().items() if "running" not in k},
                        strict=False)
    assert (own(x_all[:4]) - r0["y"]).abs().max() > 0.1


def test_eval_mode_uses_the_running_statistics():
    plain, ours = _pair(1)
    for _ in range(3):  # give the running statistics something to hold
        batch = torch.randn(5, 3, 2, 2) * 2 + 1
        plain(batch), ours(batch)
    plain.eval(), ours.eval()
    x = torch.randn(5, 3, 2, 2)
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)
    assert int(ours.num_batches_tracked) == 3
