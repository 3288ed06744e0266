"""Objects the checks hand to a learner's function: small models and wrappers.

They live apart from the exercise modules for two reasons: a learner's function may call them (run a
model's forward pass, call an attention layer) without calling a reference of the check, and in graded
mode they travel to the process that runs the learner's code, which can import this module but not the
exercise modules (see `lmlab.exercises.graded`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["SmallNet", "make_net", "net_with_grads", "FirstOutput", "parameter_with_grad"]


class SmallNet(nn.Module):
    """Registered in the order proj, emb, norm, head (not alphabetical), with a buffer, a frozen
    parameter (``emb.weight``) and a layer the forward pass does not use (``head``)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(40, 30)  # 1,200 weights: str() of it elides the middle with "..."
        self.emb = nn.Embedding(6, 40)
        self.norm = nn.LayerNorm(30)
        self.head = nn.Linear(30, 2)  # unused in forward: its gradients stay None
        self.register_buffer("scale", torch.tensor(0.5))  # a buffer: in state_dict, not a parameter

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(self.emb(idx))) * self.scale  # (B, T) -> (B, T, 30)


def make_net(seed: int) -> SmallNet:
    """A `SmallNet` with deterministic weights (and nonzero LayerNorm parameters); emb.weight is frozen."""
    g = torch.Generator().manual_seed(seed)
    net = SmallNet()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    net.emb.weight.requires_grad_(False)
    return net


def net_with_grads(seed: int) -> SmallNet:
    """`make_net(seed)` after one backward pass: every used, trainable parameter has a gradient."""
    net = make_net(seed)
    g = torch.Generator().manual_seed(100 + seed)
    idx = torch.randint(0, 6, (3, 5), generator=g)
    target = torch.randn(3, 5, 30, generator=g)
    ((net(idx) - target) ** 2).mean().backward()
    return net


class FirstOutput(nn.Module):
    """A module that returns the first output of another: lmlab's attention returns (y, kv cache, weights)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[0]


def parameter_with_grad(data: torch.Tensor, requires_grad: bool, grad: torch.Tensor) -> nn.Parameter:
    """Rebuild a parameter together with its gradient (pickling a Parameter alone drops ``.grad``)."""
    p = nn.Parameter(data, requires_grad=requires_grad)
    p.grad = grad
    return p
