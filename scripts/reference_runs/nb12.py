"""Notebook 12's training cells: a character GPT on Tiny Shakespeare (300 steps), and a tiny MaskedLM on a
counting task with a BERT word-piece tokenizer (200 steps)."""

import torch

from lmlab.models import GPT, GPTConfig, MaskedLM, MaskedLMConfig
from lmlab.models.masked import mask_tokens
from lmlab.train import TrainConfig, train
from shakespeare import char_run


def char_gpt(seed: int):
    def model(vocab_size):
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))

    return char_run(seed, model, block_size=64, batch_size=32,
                    max_steps=300, lr=1e-2, warmup_steps=20, eval_every=50, eval_batches=10)


def counting_bert(seed: int):
    from transformers import BertTokenizerFast

    words = "one two three four five six seven eight nine ten eleven twelve".split()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bert_tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(specials + words)})

    class CountingBatches:
        def __init__(self, batch_size, seed=0):
            self.batch_size, self.seed = batch_size, seed

        def get(self, step):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            B = self.batch_size
            first = torch.randint(0, len(words) - 5, (B,), generator=g)
            rows = first[:, None] + torch.arange(6) + len(specials)
            cls, sep = torch.full((B, 1), bert_tok.cls_token_id), torch.full((B, 1), bert_tok.sep_token_id)
            idx = torch.cat([cls, rows, sep], dim=1)
            return mask_tokens(idx, mask_token_id=bert_tok.mask_token_id, vocab_size=len(bert_tok), mask_prob=0.25,
                               generator=g, special_ids=[bert_tok.cls_token_id, bert_tok.sep_token_id])

    torch.manual_seed(seed)
    model = MaskedLM(MaskedLMConfig(vocab_size=len(bert_tok), block_size=16, n_layer=2, n_head=2, n_embd=32,
                                    pad_token_id=bert_tok.pad_token_id, mask_token_id=bert_tok.mask_token_id))
    # the training batches follow the seed; the validation batches are fixed (seed 1000), as in the notebook
    history = train(model, CountingBatches(32, seed=seed), CountingBatches(32, seed=1000),
                    TrainConfig(max_steps=200, lr=1e-2, warmup_steps=10, eval_every=50, eval_batches=4, seed=seed,
                                progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb12_char_gpt": char_gpt, "nb12_counting_bert": counting_bert}
