"""Language models of the course (more are added as they are written)."""

from lmlab.models.gpt import GPT, GPTConfig, KVCache

__all__ = ["GPT", "GPTConfig", "KVCache"]
