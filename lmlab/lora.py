"""LoRA: low-rank adapters for fine-tuning (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models").

A frozen linear layer ``y = x W^T + b`` gets a trainable low-rank update:

    y = x W^T + b + (alpha / r) * x A^T B^T          A (r, in), B (out, r), r << min(in, out)

``A`` starts random (Kaiming-uniform, as ``nn.Linear`` and peft), ``B`` starts at zero, so at the start
the adapted layer computes exactly what the base layer computes. Only ``A`` and ``B`` train: a layer
with ``in * out`` weights gets ``r * (in + out)`` trainable ones. After training the update can be
merged into the weight, ``W' = W + (alpha / r) B A``, and the adapter costs nothing at inference.

The names and shapes follow Hugging Face peft (``lora_A.weight`` is (r, in), ``lora_B.weight`` is
(out, r), scaling ``alpha / r``), so the same A and B give the same outputs (tests/test_lora.py).

Letters: N any leading dimensions, in/out the layer's feature sizes, r the rank.

Left out: dropout on the adapter input, rank-stabilized scaling (alpha / sqrt(r)), adapters on
embeddings or convolutions, and several adapters per layer.

Example:
    >>> model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16))
    >>> add_lora(model, r=4, alpha=8)                 # adapters on every attention projection, base frozen
    >>> count_trainable(model)                        # 2 layers x 2 projections x 4 * (in + out)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["LoRALinear", "add_lora", "merge_lora", "count_trainable", "lora_param_count"]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) B A``.

    Args:
        base: the linear layer to adapt (its parameters are frozen, not copied).
        r: the rank of the update (>= 1).
        alpha: the scale numerator; the update is multiplied by ``alpha / r``.

    Shape:
        x (N, in) -> (N, out); lora_A.weight (r, in), lora_B.weight (out, r)

    Example:
        >>> layer = LoRALinear(nn.Linear(16, 48), r=4, alpha=8)
        >>> x = torch.randn(2, 5, 16)
        >>> torch.equal(layer(x), layer.base(x))      # B = 0 at the start
        True
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = 1.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"the rank r must be a positive int, got {r!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha!r}")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha = r, float(alpha)
        self.scaling = self.alpha / r
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device, dtype=w.dtype)  # weight (r, in)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device, dtype=w.dtype)  # weight (out, r)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as nn.Linear and peft
        nn.init.zeros_(self.lora_B.weight)  # the update starts at zero: the base model is unchanged

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling  # (N, in) -> (N, r) -> (N, out)

    def delta_weight(self) -> Tensor:
        """The update ``(alpha / r) B A`` as a full matrix. Shape: (out, in)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling  # (out, r) x (r, in) -> (out, in)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + (alpha / r) B A``: the same function, no adapter cost."""
        b = self.base
        out = nn.Linear(b.in_features, b.out_features, bias=b.bias is not None,
                        device=b.weight.device, dtype=b.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(b.weight + self.delta_weight())
            if b.bias is not None:
                out.bias.copy_(b.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}"


def lora_param_count(in_features: int, out_features: int, r: int) -> int:
    """Trainable parameters of one adapter: ``r * (in + out)``. Example: (128, 384, 4) -> 2048."""
    return r * (in_features + out_features)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def add_lora(model: nn.Module, r: int = 4, alpha: float = 8.0,
             targets: tuple[str, ...] = ("attn.c_attn", "attn.c_proj"), freeze: bool = True) -> nn.Module:
    """Wrap every ``nn.Linear`` whose name ends with one of ``targets`` in a ``LoRALinear``, in place.

    The defaults adapt a lmlab GPT's attention projections (fused q/k/v ``c_attn`` and output ``c_proj``);
    for a MaskedLM use ``targets=("attn.query", "attn.key", "attn.value", "attn.out")``. With ``freeze``
    every other parameter of ``model`` is frozen too, so only the adapters train (add a trainable head
    afterwards, e.g. a ``SequenceClassifier`` around the adapted body).

    Returns the model. Raises ValueError if no layer matches.
    """
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    if not names:
        raise ValueError(f"no nn.Linear layer of the model has a name ending with {targets}; "
                         "list them with [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]")
    if freeze:
        model.requires_grad_(False)
    for n in names:
        _replace(model, n, LoRALinear(model.get_submodule(n), r=r, alpha=alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LoRALinear`` by its merged ``nn.Linear`` (in place); returns the model."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for n in names:
        _replace(model, n, model.get_submodule(n).merged())
    return model


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
