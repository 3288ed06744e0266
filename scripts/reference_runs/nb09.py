"""Notebook 09's training cells: a GPT and a masked LM pretrained on the same grammar sentences (word tokens)."""

import torch

from lmlab.data import GrammarSource, LMBatches, train_val_split
from lmlab.models import GPT, GPTConfig, MaskedLM, MaskedLMConfig, mask_tokens
from lmlab.train import TrainConfig, train


def _data():
    grammar = GrammarSource(seed=0)
    sentences = [s.text for s in grammar.sample(6000, seed=0)]
    vocab = sorted(grammar.category) + [".", "[MASK]"]
    stoi = {w: i for i, w in enumerate(vocab)}
    ids = torch.tensor([stoi[w] for s in sentences for w in s.replace(".", " .").split()])
    train_ids, val_ids = train_val_split(ids, 0.1)
    return train_ids, val_ids, len(vocab), stoi["[MASK]"]


class MaskedBatches:
    """As in the notebook: windows of `ids` masked with BERT's recipe, a function of the step."""

    def __init__(self, ids, block_size, batch_size, V, mask_id, seed=0, random=True):
        self.windows = LMBatches(ids, block_size, batch_size, seed=seed, random=random)
        self.seed, self.V, self.mask_id = seed, V, mask_id

    def get(self, step):
        x, _ = self.windows.get(step)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return mask_tokens(x, mask_token_id=self.mask_id, vocab_size=self.V, generator=g)


def gpt(seed: int):
    train_ids, val_ids, V, _ = _data()
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=64))
    history = train(model, LMBatches(train_ids, block_size=16, batch_size=64, seed=seed),
                    LMBatches(val_ids, block_size=16, batch_size=64, random=False),
                    TrainConfig(max_steps=200, lr=3e-3, warmup_steps=20, eval_every=50, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


def mlm(seed: int):
    train_ids, val_ids, V, MASK = _data()
    torch.manual_seed(seed)
    model = MaskedLM(MaskedLMConfig(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=64, mask_token_id=MASK))
    history = train(model, MaskedBatches(train_ids, 16, 128, V, MASK, seed=seed),
                    MaskedBatches(val_ids, 16, 128, V, MASK, random=False),
                    TrainConfig(max_steps=500, lr=3e-3, warmup_steps=20, eval_every=50, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb09_gpt": gpt, "nb09_mlm": mlm}
