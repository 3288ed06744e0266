"""Weight exchange with Hugging Face transformers: lmlab ``GPT`` <-> ``GPT2LMHeadModel`` and
lmlab ``MaskedLM`` <-> ``BertForMaskedLM``.

The lmlab models are built module for module like their transformers counterparts, so exchanging
weights is renaming state-dict entries, plus two details:

- GPT-2 stores its projections as ``Conv1D`` layers whose weight is (in, out), the transpose of an
  ``nn.Linear`` weight (out, in): ``c_attn``, ``c_proj`` and ``c_fc`` weights are transposed.
  The module names are otherwise identical (nanoGPT chose them to be).
- BERT's names differ (table in ``lmlab.models.masked``); no transposes. Its MLM decoder bias is
  stored twice (``cls.predictions.bias`` and ``cls.predictions.decoder.bias``, the same tensor).

``to_hf(model)`` and ``from_hf(hf_model)`` choose the conversion from the type they are given.
``from_hf`` also takes a folder written by ``save_pretrained`` or a hub name such as ``"gpt2"``
(downloaded when online; ``HF_HUB_OFFLINE=1`` uses only the local cache). Such a folder is data only:
code it ships (``auto_map`` in config.json) is refused, never run, and pickled weights
(``pytorch_model.bin``) are loaded only with ``from_hf(path, use_safetensors=False)``.

Not supported (a ValueError says which option): GPT-2 variants with ``scale_attn_by_inverse_layer_idx``,
unscaled attention, cross-attention, another activation than tanh-GELU, an MLP width other than
4 * n_embd, untied output weights or another LayerNorm epsilon; BERT variants with relative position
embeddings, another activation than exact GELU, an MLP width other than 4 * hidden_size, or decoders.
lmlab ``GPT(bias=False)`` is exported with zero biases (GPT-2 always has biases; a zero bias is no
bias), and comes back as a ``bias=True`` GPT. Only one dropout rate exists in lmlab: from GPT-2 it
is ``resid_pdrop``, from BERT ``hidden_dropout_prob``.

Example:
    >>> hf = to_hf(gpt)                                    # transformers.GPT2LMHeadModel
    >>> hf.save_pretrained("my-gpt"); gpt2 = from_hf("my-gpt")
    >>> hf_model, hf_tok = to_hf(gpt, tok)                 # with tok.to_hf(), same ids
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import torch
import torch.nn as nn
from torch import Tensor

from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.masked import MaskedLM, MaskedLMConfig
from lmlab.safe_load import require_safe_torch_load

if TYPE_CHECKING:  # transformers is imported inside the functions that use it
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

__all__ = ["to_hf", "from_hf", "HFModelAndTokenizer"]

# GPT-2 layers that are Conv1D in transformers: their weights are the transpose of lmlab's nn.Linear.
_CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# lmlab MaskedLM name -> BertForMaskedLM name; the first matching pattern wins.
_BERT_NAMES = [
    (r"^embeddings\.ln\.", "bert.embeddings.LayerNorm."),
    (r"^embeddings\.", "bert.embeddings."),
    (r"^layers\.(\d+)\.attn\.(query|key|value)\.", r"bert.encoder.layer.\1.attention.self.\2."),
    (r"^layers\.(\d+)\.attn\.out\.", r"bert.encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.ln_1\.", r"bert.encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.mlp\.fc\.", r"bert.encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.mlp\.proj\.", r"bert.encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.ln_2\.", r"bert.encoder.layer.\1.output.LayerNorm."),
    (r"^head\.dense\.", "cls.predictions.transform.dense."),
    (r"^head\.ln\.", "cls.predictions.transform.LayerNorm."),
    (r"^head\.decoder\.weight$", "cls.predictions.decoder.weight"),
    (r"^head\.decoder\.bias$", "cls.predictions.bias"),
]


class HFModelAndTokenizer(NamedTuple):
    """What ``to_hf(model, tokenizer)`` returns: unpack it as ``hf_model, hf_tok = to_hf(model, tok)``."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast


def _bert_name(name: str) -> str:
    """lmlab MaskedLM state-dict name -> BertForMaskedLM name. Example: layers.0.ln_2.bias ->
    bert.encoder.layer.0.output.LayerNorm.bias"""
    for pattern, replacement in _BERT_NAMES:
        if re.search(pattern, name):
            return re.sub(pattern, replacement, name)
    raise KeyError(f"no BERT name for MaskedLM parameter {name!r}")  # internal: the table is incomplete


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------------------------------
# lmlab -> transformers


@overload
def to_hf(model: nn.Module, tokenizer: None = None, *, eos_id: int | None = None,
          attn_implementation: str | None = None) -> PreTrainedModel: ...
@overload
def to_hf(model: nn.Module, tokenizer: Any, *, eos_id: int | None = None,
          attn_implementation: str | None = None) -> HFModelAndTokenizer: ...


def to_hf(model: nn.Module, tokenizer: Any = None, *, eos_id: int | None = None,
          attn_implementation: str | None = None) -> PreTrainedModel | HFModelAndTokenizer:
    """The transformers twin of an lmlab model, with a copy of its weights.

    Args:
        model: a ``GPT`` (-> ``GPT2LMHeadModel``) or a ``MaskedLM`` (-> ``BertForMaskedLM``).
        tokenizer: optional lmlab tokenizer; its ``to_hf()`` is returned with the model.
        eos_id: GPT only: the end-of-text id written into the config as GPT-2's bos/eos/pad id
            (``generate`` in transformers stops at it). Default: the exported tokenizer's
            ``eos_token_id``, else none (generation runs to ``max_new_tokens``).
        attn_implementation: e.g. ``"eager"``, needed for ``output_attentions=True``; default
            transformers' choice (``"sdpa"``).

    The result is on the model's device, in the same train/eval mode.

    Returns: the model, or ``HFModelAndTokenizer(model, tokenizer)`` when a tokenizer is given.

    Example:
        >>> hf = to_hf(GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16)))
        >>> type(hf).__name__
        'GPT2LMHeadModel'
    """
    hf_tok = None
    if tokenizer is not None:
        if not hasattr(tokenizer, "to_hf"):
            raise TypeError(f"tokenizer must be an lmlab tokenizer with a to_hf() method (CharTokenizer, BPETokenizer), "
                            f"got {type(tokenizer).__name__}")
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab_size is not None and tokenizer.vocab_size > vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only {vocab_size}; "
                             "pass the tokenizer the model was trained with")
        hf_tok = tokenizer.to_hf()
        if eos_id is None:
            eos_id = hf_tok.eos_token_id
    if isinstance(model, GPT):
        hf = _gpt_to_hf(model, eos_id, attn_implementation)
    elif isinstance(model, MaskedLM):
        if eos_id is not None and tokenizer is None:
            raise ValueError("eos_id applies to GPT models only; a MaskedLM does not generate")
        hf = _bert_to_hf(model, attn_implementation)
    else:
        raise TypeError(f"to_hf converts lmlab GPT and MaskedLM models, got {type(model).__name__}")
    hf.to(_device(model)).train(model.training)
    return hf if hf_tok is None else HFModelAndTokenizer(hf, hf_tok)


def _impl_kwargs(attn_implementation: str | None) -> dict[str, Any]:
    return {} if attn_implementation is None else {"attn_implementation": attn_implementation}


def _gpt_to_hf(model: GPT, eos_id: int | None, attn_implementation: str | None) -> PreTrainedModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    if not c.mlp:
        raise ValueError("this GPT is attention-only (GPTConfig(mlp=False)); GPT-2 has an MLP in every block, so "
                         "there is no transformers twin: export a GPT built with mlp=True")
    if eos_id is not None and not (isinstance(eos_id, int) and 0 <= eos_id < c.vocab_size):
        raise ValueError(f"eos_id={eos_id!r} must be a token id in [0, vocab_size={c.vocab_size})")
    config = GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.block_size,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_inner=None,  # 4 * n_embd, as lmlab
        activation_function="gelu_new",  # tanh approximation of GELU
        resid_pdrop=c.dropout,
        embd_pdrop=c.dropout,
        attn_pdrop=c.dropout,
        layer_norm_epsilon=1e-5,
        bos_token_id=eos_id,  # GPT-2 uses one <|endoftext|> id for all three
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=True,
        **_impl_kwargs(attn_implementation),
    )
    hf = GPT2LMHeadModel(config)
    ours = model.state_dict()
    state = {}
    for name, target in hf.state_dict().items():
        if name in ours:
            w = ours[name]
            state[name] = w.t() if name.endswith(_CONV1D_WEIGHTS) else w  # Linear (out, in) -> Conv1D (in, out)
        elif name.endswith(".bias") and not c.bias:
            state[name] = torch.zeros_like(target)  # bias=False: GPT-2 always has biases, zero = none
        else:
            raise AssertionError(f"GPT has no weight for GPT-2's {name}")  # internal: the models differ
    hf.load_state_dict(state, strict=True)
    return hf


def _bert_to_hf(model: MaskedLM, attn_implementation: str | None) -> PreTrainedModel:
    from transformers import BertConfig, BertForMaskedLM

    c = model.config
    config = BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.n_embd,
        num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head,
        intermediate_size=4 * c.n_embd,
        hidden_act="gelu",  # exact (erf) GELU
        hidden_dropout_prob=c.dropout,
        attention_probs_dropout_prob=c.dropout,
        max_position_embeddings=c.block_size,
        type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=c.pad_token_id,  # BERT's default 0 would freeze the gradient of embedding row 0
        tie_word_embeddings=True,
        **_impl_kwargs(attn_implementation),
    )
    hf = BertForMaskedLM(config)
    state = {_bert_name(name): w for name, w in model.state_dict().items()}
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]  # one tensor under two names
    hf.load_state_dict(state, strict=True)
    return hf


# ----------------------------------------------------------------------------------------------------
# transformers -> lmlab


def from_hf(hf_model: PreTrainedModel | str | os.PathLike, *, use_safetensors: bool = True) -> GPT | MaskedLM:
    """The lmlab twin of a transformers model, with a copy of its weights.

    Args:
        hf_model: a ``GPT2LMHeadModel`` (-> ``GPT``) or ``BertForMaskedLM`` (-> ``MaskedLM``), or a
            folder written by ``save_pretrained`` or a hub name (``"gpt2"``, ``"bert-base-uncased"``),
            loaded with ``from_pretrained``.
        use_safetensors: a folder or hub name must hold ``model.safetensors`` (data only). Pass False to also
            accept a pickled ``pytorch_model.bin`` from a source you trust (loaded with ``weights_only=True``,
            refused before torch 2.6: CVE-2025-32434).

    Code shipped with a checkpoint is never run: a config.json with an ``auto_map`` (custom Python files)
    is refused with a ValueError, without asking (``trust_remote_code=False``).
    The result is on the model's device, in the same train/eval mode, in float32. A MaskedLM's
    ``config.mask_token_id`` is left None: set it from the tokenizer (``tok.mask_token_id``).

    Raises ValueError naming the option when the transformers model uses one lmlab does not have.

    Example:
        >>> gpt = from_hf("gpt2")   # online, or with the hub cache filled
        >>> gpt.config.n_layer, gpt.config.vocab_size
        (12, 50257)
    """
    if not isinstance(use_safetensors, bool):
        raise TypeError(f"use_safetensors must be True or False, got {use_safetensors!r}")
    if isinstance(hf_model, (str, os.PathLike)):
        hf_model = _load_pretrained(os.fspath(hf_model), use_safetensors)
    from transformers import BertForMaskedLM, GPT2LMHeadModel

    if isinstance(hf_model, GPT2LMHeadModel):
        model: GPT | MaskedLM = _gpt_from_hf(hf_model)
    elif isinstance(hf_model, BertForMaskedLM):
        model = _bert_from_hf(hf_model)
    else:
        raise TypeError(f"from_hf converts GPT2LMHeadModel and BertForMaskedLM, got {type(hf_model).__name__}; "
                        "load the checkpoint with one of those classes (a model with a language-model head)")
    return model.to(_device(hf_model)).train(hf_model.training)


# Weight files of a save_pretrained folder: safetensors hold only tensors; .bin files are pickles.
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _looks_like_a_path(name: str) -> bool:
    """True for a folder path, False for a hub name such as ``"gpt2"`` or ``"openai-community/gpt2"``."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name) or os.path.exists(name))


def _read_config(name: str) -> dict[str, Any]:
    """The raw config.json of a folder or hub name, read as data (nothing in it is imported or run)."""
    import json

    from transformers import PretrainedConfig

    if not _looks_like_a_path(name):
        return PretrainedConfig.get_config_dict(name)[0]  # hub name: downloaded or from the hub cache
    if not os.path.isdir(name):
        raise FileNotFoundError(f"no such folder {name!r}; pass a folder written by save_pretrained or a hub name "
                                "such as 'gpt2'")
    path = os.path.join(name, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the folder {name!r} has no config.json; pass a folder written by save_pretrained")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid JSON config ({e}); save the model again with save_pretrained") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a {type(config).__name__}, not a config; save the model again")
    return config


def _refuse_remote_code(name: str, config: dict[str, Any]) -> None:
    """A config whose ``auto_map`` names Python files asks transformers to import them: refuse, never ask."""
    auto_map = config.get("auto_map")
    if not auto_map:
        return
    refs = [r for v in (auto_map.values() if isinstance(auto_map, dict) else [auto_map])
            for r in (v if isinstance(v, list) else [v]) if isinstance(r, str)]
    files = sorted({r.split("--")[-1].rsplit(".", 1)[0] + ".py" for r in refs}) or ["?"]
    raise ValueError(
        f"{name!r} ships its own Python code (config.json auto_map -> {', '.join(files)}); lmlab never runs code "
        "from a model folder (trust_remote_code=False). Use a standard GPT-2 or BERT checkpoint; if you have read "
        "and trust that code, load the model yourself with transformers."
    )


def _check_weight_files(name: str, use_safetensors: bool) -> None:
    """A local folder must hold safetensors weights, or pickled ones when the caller allows them."""
    if any(os.path.isfile(os.path.join(name, f)) for f in _SAFE_WEIGHTS):
        return
    pickled = [f for f in _PICKLED_WEIGHTS if os.path.isfile(os.path.join(name, f))]
    if not pickled:
        raise FileNotFoundError(f"the folder {name!r} has no weights (model.safetensors); save the model there "
                                "with save_pretrained")
    if use_safetensors:
        raise ValueError(
            f"the folder {name!r} holds only pickled weights ({pickled[0]}); a pickle can run code when loaded, so "
            "lmlab loads safetensors only. If you trust where the folder came from, pass "
            "from_hf(path, use_safetensors=False) (loaded with weights_only=True, torch 2.6 or later), then "
            "save_pretrained it again to get model.safetensors."
        )
    require_safe_torch_load(os.path.join(name, pickled[0]))


def _load_pretrained(name: str, use_safetensors: bool) -> PreTrainedModel:
    """from_pretrained with the class that matches the checkpoint's model_type; never runs the folder's code."""
    from transformers import BertForMaskedLM, GPT2LMHeadModel

    config = _read_config(name)
    _refuse_remote_code(name, config)
    classes = {"gpt2": GPT2LMHeadModel, "bert": BertForMaskedLM}
    model_type = config.get("model_type")
    if model_type not in classes:
        raise ValueError(f"{name!r} is a {model_type!r} model; from_hf supports "
                         f"{sorted(classes)} (GPT-2 and BERT checkpoints)")
    if os.path.isdir(name):
        _check_weight_files(name, use_safetensors)
    elif not use_safetensors:
        require_safe_torch_load(f"{name}/pytorch_model.bin")
    try:  # use_safetensors=None: safetensors when there, else the pickle (the caller allowed it)
        return classes[model_type].from_pretrained(name, trust_remote_code=False,
                                                   use_safetensors=True if use_safetensors else None)
    except OSError as e:
        if use_safetensors and "safetensors" in str(e):
            raise ValueError(f"{name!r} has no safetensors weights (model.safetensors), only pickled ones; lmlab loads "
                             "safetensors only. If you trust its source, pass from_hf(name, use_safetensors=False) "
                             "(torch 2.6 or later).") from e
        raise


def _raise_if_unsupported(kind: str, problems: list[str]) -> None:
    if problems:
        raise ValueError(f"this {kind} cannot be represented exactly in lmlab: " + "; ".join(problems)
                         + ". Use a checkpoint with the standard architecture.")


def _gpt_from_hf(hf: PreTrainedModel) -> GPT:
    c = hf.config
    problems = []
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        problems.append(f"activation_function={c.activation_function!r} (lmlab uses tanh-GELU, 'gelu_new')")
    if c.n_inner not in (None, 4 * c.n_embd):
        problems.append(f"n_inner={c.n_inner} (lmlab's MLP is 4 * n_embd = {4 * c.n_embd} wide)")
    if not c.scale_attn_weights:
        problems.append("scale_attn_weights=False (lmlab always divides attention scores by sqrt(head size))")
    if c.scale_attn_by_inverse_layer_idx:
        problems.append("scale_attn_by_inverse_layer_idx=True (not in lmlab)")
    if getattr(c, "add_cross_attention", False):
        problems.append("add_cross_attention=True (lmlab's GPT is decoder-only)")
    if abs(c.layer_norm_epsilon - 1e-5) > 1e-12:
        problems.append(f"layer_norm_epsilon={c.layer_norm_epsilon} (lmlab uses 1e-5)")
    if not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight):
        problems.append("lm_head is not tied to the token embedding wte (lmlab ties them)")
    _raise_if_unsupported("GPT-2 model", problems)

    config = GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer, n_head=c.n_head,
                       n_embd=c.n_embd, dropout=float(c.resid_pdrop), bias=True)
    model = GPT(config)
    theirs = hf.state_dict()
    state = {}
    for name in model.state_dict():
        w = theirs[name]
        state[name] = w.t() if name.endswith(_CONV1D_WEIGHTS) else w  # Conv1D (in, out) -> Linear (out, in)
    model.load_state_dict(state, strict=True)
    return model


def _bert_from_hf(hf: PreTrainedModel) -> MaskedLM:
    c = hf.config
    problems = []
    if c.hidden_act != "gelu":
        problems.append(f"hidden_act={c.hidden_act!r} (lmlab uses exact GELU, 'gelu')")
    if c.intermediate_size != 4 * c.hidden_size:
        problems.append(f"intermediate_size={c.intermediate_size} (lmlab's MLP is 4 * hidden_size = "
                        f"{4 * c.hidden_size} wide)")
    if getattr(c, "position_embedding_type", "absolute") not in (None, "absolute"):
        problems.append(f"position_embedding_type={c.position_embedding_type!r} (lmlab has absolute positions)")
    if c.is_decoder or getattr(c, "add_cross_attention", False):
        problems.append("is_decoder/add_cross_attention (lmlab's MaskedLM is an encoder)")
    if not torch.equal(hf.cls.predictions.decoder.weight, hf.bert.embeddings.word_embeddings.weight):
        problems.append("the MLM decoder is not tied to the word embeddings (lmlab ties them)")
    _raise_if_unsupported("BERT model", problems)

    pad = c.pad_token_id if c.pad_token_id is not None and 0 <= c.pad_token_id < c.vocab_size else None
    config = MaskedLMConfig(vocab_size=c.vocab_size, block_size=c.max_position_embeddings, n_layer=c.num_hidden_layers,
                            n_head=c.num_attention_heads, n_embd=c.hidden_size, dropout=float(c.hidden_dropout_prob),
                            pad_token_id=pad, type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_eps)
    model = MaskedLM(config)
    theirs = hf.state_dict()
    state: dict[str, Tensor] = {name: theirs[_bert_name(name)] for name in model.state_dict()}
    model.load_state_dict(state, strict=True)
    return model
