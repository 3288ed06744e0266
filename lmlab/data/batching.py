"""Train/validation splits and batches for training loops.

A *batch source* is any object with a method ``get(step) -> (x, y)`` that returns the batch for a
training step. The batch depends only on the source's seed and the step number, never on what came
before, so a run resumed from a checkpoint at step k sees exactly the batches it would have seen.

Batches are built on the host; ``PinnedCopy`` moves them to a GPU through page-locked buffers allocated once,
so the copy is queued like a kernel and the host goes on building the next step.

Letters: B batch size, T block size (context length).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _as_ids(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Return ``ids`` as a 1-D int64 tensor (no copy when it already is one)."""
    t = torch.as_tensor(ids)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"token ids must be integers, got {t.dtype}; converting would round them silently: "
                        "pass the tokenizer's ids (torch.tensor(tok.encode(text), dtype=torch.long))")
    t = t.long()
    if t.dim() != 1:
        raise ValueError(f"expected a 1-D sequence of token ids, got shape {tuple(t.shape)}; flatten it first")
    return t


def train_val_split(ids: Sequence[int] | torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token sequence into a training head and a validation tail.

    The split is contiguous (not shuffled) so that no validation window overlaps training text.

    Example: train_val_split(range(10), 0.2) -> (tensor([0..7]), tensor([8, 9]))
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    t = _as_ids(ids)
    n_val = max(1, int(round(len(t) * val_fraction)))
    if n_val >= len(t):
        raise ValueError(f"a sequence of {len(t)} tokens is too short to split with val_fraction={val_fraction}")
    return t[:-n_val], t[-n_val:]


def _step_generator(seed: int, step: int) -> torch.Generator:
    """A generator whose state depends only on (seed, step): batches never depend on history."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


class LMBatches:
    """Language-model batches: windows of ``block_size + 1`` tokens cut from one long sequence.

    ``x`` is a window's first ``block_size`` tokens and ``y`` the same window shifted by one, so
    ``y[b, t]`` is the token that follows ``x[b, :t+1]``.

    Args:
        ids: the token sequence (1-D).
        block_size: context length T.
        batch_size: windows per batch B.
        seed: makes ``get(step)`` reproducible.
        random: random window starts (training) or consecutive, non-overlapping windows that walk
            through the data in order and wrap around (evaluation, truncated BPTT).
        device: where ``get`` puts the tensors ("cpu" by default; the training loop moves them).

    Shape:
        get(step) -> x (B, T), y (B, T), both int64.

    Example:
        >>> b = LMBatches(list(range(100)), block_size=4, batch_size=2, random=False)
        >>> x, y = b.get(0)
        >>> x.tolist(), y.tolist()
        ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """

    def __init__(self, ids, block_size: int, batch_size: int, seed: int = 0, random: bool = True, device="cpu"):
        self.ids = _as_ids(ids)
        if block_size < 1 or batch_size < 1:
            raise ValueError(f"block_size and batch_size must be >= 1, got {block_size} and {batch_size}")
        if len(self.ids) < block_size + 1:
            raise ValueError(
                f"the data has {len(self.ids)} tokens but one window needs block_size + 1 = {block_size + 1}; "
                "use a smaller block_size or more data"
            )
        self.block_size, self.batch_size, self.seed, self.random = block_size, batch_size, seed, random
        self.device = torch.device(device)
        self.to_device = PinnedCopy(self.device)
        self.n_windows = (len(self.ids) - 1) // block_size  # non-overlapping windows for sequential mode
        # all windows as a strided view: (N, T + 1) without copying the data
        self._windows = self.ids.unfold(0, block_size + 1, 1)

    def starts(self, step: int) -> torch.Tensor:
        """Start offsets of the B windows of batch ``step``."""
        B, T = self.batch_size, self.block_size
        if self.random:
            g = _step_generator(self.seed, step)
            return torch.randint(len(self.ids) - T, (B,), generator=g)
        # sequential: row b of consecutive batches continues where it stopped (for carrying LSTM state)
        per_row = max(1, self.n_windows // B)
        rows = torch.arange(B)
        return ((rows * per_row + step % per_row) * T) % (len(self.ids) - T)

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self._windows[self.starts(step)]  # (B, T + 1)
        x, y = w[:, :-1].contiguous(), w[:, 1:].contiguous()  # (B, T), (B, T)
        return self.to_device(x, y)

    def __len__(self) -> int:
        """Number of distinct sequential batches (one pass over the data)."""
        return max(1, self.n_windows // self.batch_size)


class ArrayBatches:
    """Batches of rows from paired tensors (inputs and labels), reshuffled every epoch.

    Used for classification. The order of epoch e depends only on (seed, e).

    Shape:
        x (N, ...) and y (N, ...) -> get(step) gives x (B, ...), y (B, ...)
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0, shuffle: bool = True):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}; they must pair up row by row")
        if len(x) == 0:
            raise ValueError("no examples: x and y are empty")
        self.x, self.y = x, y
        self.batch_size = min(batch_size, len(x))
        self.seed, self.shuffle = seed, shuffle
        self.batches_per_epoch = max(1, len(x) // self.batch_size)

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, self.batches_per_epoch)
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=_step_generator(self.seed, epoch))
        else:
            order = torch.arange(len(self.x))
        rows = order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def __len__(self) -> int:
        return self.batches_per_epoch


class PinnedCopy:
    """Copy host tensors to ``device`` without making the host wait: ``x, y = to_device(x, y)``.

    A copy from ordinary (pageable) host memory to a GPU blocks the host until it is done; a copy from
    page-locked ("pinned") memory is queued like a kernel (``non_blocking=True``) and the host goes on. The
    pinned buffers are allocated once (again only if the shapes change) and used in turn, ``slots`` sets of
    them: before refilling a set, the host waits for the copy that last read it, which has long finished
    unless the host runs ``slots`` steps ahead of the device. On the CPU (or MPS) it returns ``t.to(device)``,
    which is ``t`` itself on the CPU; tensors already on the GPU are returned as they are.
    """

    def __init__(self, device: str | torch.device, slots: int = 2):
        self.device = torch.device(device)
        self.buffers: list[tuple[Tensor, ...]] = [() for _ in range(slots)]  # pinned host tensors, per slot
        self.copied: list[torch.cuda.Event | None] = [None] * slots  # recorded after each slot's last copy
        self.turn = 0

    def __call__(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        if self.device.type != "cuda" or any(t.device.type != "cpu" for t in tensors):
            return tuple(t.to(self.device) for t in tensors)
        slot, self.turn = self.turn, (self.turn + 1) % len(self.buffers)
        if self.copied[slot] is None:
            self.copied[slot] = torch.cuda.Event()
        self.copied[slot].synchronize()  # the copy that last read these buffers is done (at once if none was)
        buffers = self.buffers[slot]
        if [(b.shape, b.dtype) for b in buffers] != [(t.shape, t.dtype) for t in tensors]:
            buffers = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors)
            self.buffers[slot] = buffers
        out = []
        for buffer, t in zip(buffers, tensors):
            buffer.copy_(t)
            out.append(buffer.to(self.device, non_blocking=True))
        self.copied[slot].record()  # after the copies queued above
        return tuple(out)
