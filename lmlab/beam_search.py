"""Beam search: keep the ``num_beams`` most likely partial sequences, scored by their summed log-probability;
a finished sequence's score is divided by its length**length_penalty.

It follows Hugging Face transformers' ``generate(num_beams=..., do_sample=False)`` step for step (same
candidates, same length penalty, same ``early_stopping`` rules), so both give the same tokens.

Letters: B batch, T prompt length, V vocab size, K beams (num_beams).

Left out: sampling inside beam search, returning more than the best beam, diverse or constrained beams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lmlab.decoding import NextTokenLogits

__all__ = ["beam_search"]


def beam_search(next_logits: NextTokenLogits, idx: Tensor, max_new_tokens: int, K: int, eos_id: int | None,
                length_penalty: float, early_stopping: bool | str) -> Tensor:
    """Beam search with transformers' rules; returns the best finished sequence of each row.

    Each step, for every batch row: extend each of the K running beams by every token, score each
    candidate by its summed log-probability, and look at the 2K best (2K so that K remain even if K
    of them end in ``eos_id``). Candidates ranked in the top K that end (EOS, or the last step) join
    the row's finished hypotheses with score ``sum_logprob / generated_len**length_penalty``, which
    keep the K best; the K best candidates that do not end are the next running beams. A row is done
    once it has K finished hypotheses and (``early_stopping=True``) always, or (False) when the best
    running beam, scored at its current length, cannot beat the worst of them ("never": scored at
    the longest possible length when length_penalty > 0).

    Shape: idx (B, T) -> (B, T + n) with n <= max_new_tokens; shorter results padded with eos_id
    """
    B, T = idx.shape
    seq = idx.repeat_interleave(K, dim=0)  # (B*K, T): beam k of row b is row b*K + k
    # Only beam 0 is live at the start, or all K identical beams would pick the same tokens.
    beam_scores = torch.full((B, K), -1e9, device=idx.device)  # (B, K) summed log-probs
    beam_scores[:, 0] = 0.0
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(B)]  # per row: (score, generated ids)
    done = [False] * B
    for step in range(max_new_tokens):
        gen_len = step + 1  # generated tokens, counting the one chosen now
        last_step = step == max_new_tokens - 1
        logprobs = F.log_softmax(next_logits(seq), dim=-1)  # (B*K, V)
        V = logprobs.size(-1)
        cand = (logprobs.view(B, K, V) + beam_scores[:, :, None]).view(B, K * V)  # (B, K*V)
        cand_scores, cand_flat = torch.topk(cand, 2 * K, dim=-1)  # (B, 2K), best first
        cand_beam, cand_tok = cand_flat // V, cand_flat % V  # (B, 2K) which beam, which token

        next_rows, next_toks, next_scores = [], [], []
        for b in range(B):
            keep: list[tuple[int, int, float]] = []
            for rank in range(2 * K):
                beam, tok, score = int(cand_beam[b, rank]), int(cand_tok[b, rank]), float(cand_scores[b, rank])
                if last_step or tok == eos_id:
                    full = len(finished[b]) == K
                    if rank < K and not done[b] and not (full and early_stopping is True):
                        ids = torch.cat([seq[b * K + beam, T:], torch.tensor([tok], device=seq.device)])
                        finished[b].append((score / gen_len**length_penalty, ids))
                        finished[b].sort(key=lambda h: h[0], reverse=True)
                        del finished[b][K:]
                elif len(keep) < K:
                    keep.append((beam, tok, score))
            if last_step:
                continue
            next_rows += [b * K + beam for beam, _, _ in keep]
            next_toks += [tok for _, tok, _ in keep]
            next_scores += [score for _, _, score in keep]
            # Can this row still improve? (transformers' early-stopping heuristic)
            if len(finished[b]) == K and not done[b]:
                if early_stopping is True:
                    done[b] = True
                else:
                    length = max_new_tokens if (early_stopping == "never" and length_penalty > 0) else gen_len
                    best_possible = keep[0][2] / length**length_penalty
                    done[b] = best_possible <= finished[b][-1][0]
        if last_step or all(done):
            break
        rows = torch.tensor(next_rows, device=seq.device)  # (B*K,)
        next_logits.reorder(rows)
        seq = torch.cat([seq[rows], torch.tensor(next_toks, device=seq.device)[:, None]], dim=1)  # (B*K, L + 1)
        beam_scores = torch.tensor(next_scores, device=seq.device).view(B, K)  # (B, K)

    return _pad_best(idx, [finished[b][0][1] for b in range(B)], eos_id)


def _pad_best(idx: Tensor, best: list[Tensor], eos_id: int | None) -> Tensor:
    """Each prompt followed by its best generated ids, shorter results padded with ``eos_id``.

    Shape: idx (B, T), best B x (n_b,) -> (B, T + max n_b)
    """
    B, T = idx.shape
    n = max(len(ids) for ids in best)
    pad = eos_id if eos_id is not None else -1  # -1 cannot happen: without EOS every result has length n
    out = torch.full((B, T + n), pad, dtype=torch.long, device=idx.device)  # (B, T + n)
    out[:, :T] = idx
    for b, ids in enumerate(best):
        out[b, T:T + len(ids)] = ids
    return out
