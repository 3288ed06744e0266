"""Run a widget's update on one CPU thread.

A widget's update works on small tensors (a (V, V) table, a few thousand tokens): so little work that waking
the other threads of PyTorch's pool costs more than it saves, and on a machine whose cores are busy with other
programs much more (``python benchmarks/widgets_00_03.py --threads 2`` against ``--threads 1``). Tensors this
small are not split between threads, so the numbers are the same with any thread count; only the time changes.

    with one_thread():
        curve = training_curve(C, "SGD", lr=100.0)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["one_thread"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Set PyTorch's intra-op threads to 1 inside the block, and back to what they were after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
