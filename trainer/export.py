"""Export a trained PreTrainingModel as a Hugging Face ``transformers`` checkpoint folder.

The folder loads with ``AutoModelForPreTraining.from_pretrained(dir)`` and
``AutoTokenizer.from_pretrained(dir)``, and gives the same logits as our model in eval mode:

    config.json              BertConfig or AlbertConfig
    model.safetensors        the state dict under HF's names, float32, tied weights left out
                             (as ``save_pretrained`` writes them; transformers re-ties on load)
    spiece.model             the SentencePiece model, unchanged
    tokenizer.json           the same tokenizer for Hugging Face ``tokenizers`` (see below)
    tokenizer_config.json    no lowercasing, accents kept, [CLS]/[SEP]/[PAD]/[UNK]/[MASK]
    special_tokens_map.json

The tokenizer. ``tokenizer.json`` is built from the SentencePiece model's own pieces, scores,
piece types and normalization table, so encoding gives SentencePiece's ids, byte fallback
included, and a pair becomes ``[CLS] A [SEP] B [SEP]`` with token types 0/1. It is read
without protobuf: transformers' own conversion of ``spiece.model`` needs a protobuf runtime
that matches sentencepiece's generated code, and drops byte fallback for ALBERT
(``AlbertConverter``: rare characters become [UNK]). For the same reason the config names the
generic ``PreTrainedTokenizerFast`` (which loads tokenizer.json as is) rather than
``AlbertTokenizer``, whose transformers 5 constructor rebuilds the pipeline without byte
fallback.

Which architecture:
    share_layers "none", E = H       -> BertForPreTraining
    share_layers "all"               -> AlbertForPreTraining, one layer group (E = H is written
                                        with an identity ``embedding_hidden_mapping_in``)
    share_layers "none", E != H      -> AlbertForPreTraining with num_hidden_groups = num_layers
                                        (one group per layer: ALBERT's unshared configuration)
    pre_layernorm, or "attention"/"ffn" sharing -> ValueError: HF BERT and ALBERT have no such
                                        variant, and a silent approximation would change outputs.
An "mlm" model (no pooler, no pair head) exports as BertForMaskedLM or AlbertForMaskedLM: the
same names without the pooler and the pair head (``AutoModelForMaskedLM`` loads it).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, field

import torch

from winnow.trainer.model import ModelConfig, PreTrainingModel

SPECIAL_TOKEN_NAMES = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
TOKENIZER_FILE = "spiece.model"  # the name AlbertTokenizer looks for (VOCAB_FILES_NAMES)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METASPACE = "\u2581"  # "▁", SentencePiece's word-boundary mark


def export_huggingface(model: PreTrainingModel, tokenizer_model_path: str, output_dir: str,
                       special_tokens: dict[str, int]) -> str:
    """Writes ``model`` and its tokenizer to ``output_dir`` (created); returns ``output_dir``.

    ``special_tokens`` is the shard manifest's ``{"[PAD]": id, "[UNK]": id, ...}``; it is checked
    against the SentencePiece model and the model config so that the exported tokenizer and
    model agree on every id.
    """
    model = _unwrap(model)
    config = model.config
    architecture = huggingface_architecture(config)
    _check_tokenizer(tokenizer_model_path, config, special_tokens)

    state = exported_tensors(model)
    hf_config = (_bert_config(config, architecture) if architecture.startswith("Bert")
                 else _albert_config(config, special_tokens, architecture))

    os.makedirs(output_dir, exist_ok=True)
    config_path, weights_path = (os.path.join(output_dir, name) for name in (CONFIG_FILE,
                                                                            WEIGHTS_FILE))
    _write_json(config_path, hf_config)
    _save_safetensors(state, weights_path)
    # safetensors creates its file 0600 whatever the umask; give it the mode open() gave the
    # config (0644 under the usual umask 022), so whoever may read the export may read it all.
    shutil.copymode(config_path, weights_path)
    shutil.copyfile(tokenizer_model_path, os.path.join(output_dir, TOKENIZER_FILE))
    with open(tokenizer_model_path, "rb") as handle:
        tokenizer = huggingface_tokenizer(handle.read(), special_tokens)
    tokenizer.save(os.path.join(output_dir, "tokenizer.json"))
    _write_json(os.path.join(output_dir, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "do_lower_case": False,
        "keep_accents": True,
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        **SPECIAL_TOKEN_NAMES,
        "model_max_length": config.max_seq_len,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
    })
    _write_json(os.path.join(output_dir, "special_tokens_map.json"), dict(SPECIAL_TOKEN_NAMES))
    return output_dir


def huggingface_architecture(config: ModelConfig) -> str:
    """"BertForPreTraining" or "AlbertForPreTraining" ("BertForMaskedLM", "AlbertForMaskedLM"
    for an mlm model); ValueError naming every unsupported feature when neither can represent
    ``config``."""
    problems = []
    if config.pre_layernorm:
        problems.append("pre_layernorm=True: HF BERT and ALBERT are post-LayerNorm only "
                        "(LayerNorm after each residual, no final LayerNorm)")
    if config.share_layers in ("attention", "ffn"):
        problems.append(f"share_layers={config.share_layers!r}: HF ALBERT shares whole layers "
                        "(attention and feed-forward together), not one sublayer")
    if problems:
        raise ValueError("cannot export to Hugging Face transformers:\n  "
                         + "\n  ".join(problems)
                         + "\n(train with pre_layernorm=False and share_layers 'none' or 'all' "
                           "to get an exportable model)")
    family = "Bert" if config.share_layers == "none" and not config.factorized else "Albert"
    return family + ("ForPreTraining" if config.has_pair_head else "ForMaskedLM")


def _unwrap(model: torch.nn.Module) -> PreTrainingModel:
    """The PreTrainingModel inside torch.compile (``_orig_mod``) or DDP (``module``) wrappers."""
    while not isinstance(model, PreTrainingModel):
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if inner is None:
            raise TypeError(f"expected a PreTrainingModel, got {type(model).__name__}")
        model = inner
    return model


def _check_tokenizer(path: str, config: ModelConfig, special_tokens: dict[str, int]) -> None:
    import sentencepiece  # a core dependency of winnow

    processor = sentencepiece.SentencePieceProcessor(model_file=path)
    problems = []
    if processor.get_piece_size() != config.vocab_size:
        problems.append(f"{path} has {processor.get_piece_size()} pieces, the model's "
                        f"vocab_size is {config.vocab_size}")
    for token in SPECIAL_TOKEN_NAMES.values():
        if token not in special_tokens:
            problems.append(f"special_tokens has no {token}")
            continue
        piece_id = processor.unk_id() if token == "[UNK]" else processor.piece_to_id(token)
        if token != "[UNK]" and piece_id == processor.unk_id():
            problems.append(f"{path} has no piece {token}")
        elif piece_id != special_tokens[token]:
            problems.append(f"{token} is id {piece_id} in {path}, special_tokens says "
                            f"{special_tokens[token]}")
    if special_tokens.get("[PAD]") not in (None, config.pad_token_id):
        problems.append(f"[PAD] is id {special_tokens['[PAD]']}, the model's pad_token_id is "
                        f"{config.pad_token_id}")
    if problems:
        raise ValueError("tokenizer does not match the model:\n  " + "\n  ".join(problems))


# --- configs -----------------------------------------------------------------------------------

def _common_config(config: ModelConfig) -> dict:
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",  # exact erf GELU (ACT2FN["gelu"]), as our F.gelu
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_seq_len,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id,
        "tie_word_embeddings": True,
        "dtype": "float32",
        "winnow_objective": config.objective,  # what the pair head's label 1 means
    }


def _bert_config(config: ModelConfig, architecture: str) -> dict:
    return {"architectures": [architecture], "model_type": "bert",
            **_common_config(config), "classifier_dropout": None}


def _albert_config(config: ModelConfig, special_tokens: dict[str, int],
                   architecture: str) -> dict:
    groups = 1 if config.share_layers == "all" else config.num_layers
    return {
        "architectures": [architecture],
        "model_type": "albert",
        **_common_config(config),
        "embedding_size": config.embedding_dim,
        "num_hidden_groups": groups,  # layer i uses group i * groups // num_layers
        "inner_group_num": 1,
        "classifier_dropout_prob": config.dropout,  # fine-tuning heads; our pair head has none
        "bos_token_id": special_tokens["[CLS]"],
        "eos_token_id": special_tokens["[SEP]"],
    }


# --- state dicts -------------------------------------------------------------------------------

def exported_tensors(model: PreTrainingModel) -> dict[str, torch.Tensor]:
    """Hugging Face name -> our tensor: a parameter, a slice (view) of one (the fused qkv), or
    a constant (ALBERT's identity embedding mapping when E = H). Export writes them; loading
    an export (``trainer.pretrained``) copies each back into the same tensor."""
    if huggingface_architecture(model.config).startswith("Bert"):
        return _bert_state_dict(model)
    return _albert_state_dict(model)

def _linear(prefix: str, layer: torch.nn.Linear) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": layer.weight, f"{prefix}.bias": layer.bias}


def _layer_norm(prefix: str, norm: torch.nn.LayerNorm) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": norm.weight, f"{prefix}.bias": norm.bias}


def _split_qkv(prefix: str, qkv: torch.nn.Linear) -> dict[str, torch.Tensor]:
    """Our fused (3H, H) qkv as HF's separate query, key and value Linears."""
    state = {}
    weights, biases = qkv.weight.chunk(3, dim=0), qkv.bias.chunk(3, dim=0)  # 3 x (H, H), (H,)
    for name, weight, bias in zip(("query", "key", "value"), weights, biases, strict=True):
        state[f"{prefix}{name}.weight"] = weight
        state[f"{prefix}{name}.bias"] = bias
    return state


def _embeddings(prefix: str, model: PreTrainingModel) -> dict[str, torch.Tensor]:
    embeddings = model.embeddings
    return {
        f"{prefix}.word_embeddings.weight": embeddings.word.weight,
        f"{prefix}.position_embeddings.weight": embeddings.position.weight,
        f"{prefix}.token_type_embeddings.weight": embeddings.token_type.weight,
        **_layer_norm(f"{prefix}.LayerNorm", embeddings.norm),
    }


def _bert_state_dict(model: PreTrainingModel) -> dict[str, torch.Tensor]:
    # cls.predictions.decoder.{weight,bias} are tied to the word embeddings and to
    # cls.predictions.bias (BertForPreTraining._tied_weights_keys), so they are not written.
    state = _embeddings("bert.embeddings", model)
    for i in range(model.config.num_layers):
        attention, ffn = model.encoder.attention[i], model.encoder.ffn[i]
        prefix = f"bert.encoder.layer.{i}"
        state.update(_split_qkv(f"{prefix}.attention.self.", attention.qkv))
        state.update(_linear(f"{prefix}.attention.output.dense", attention.dense))
        state.update(_layer_norm(f"{prefix}.attention.output.LayerNorm", attention.norm))
        state.update(_linear(f"{prefix}.intermediate.dense", ffn.up))
        state.update(_linear(f"{prefix}.output.dense", ffn.down))
        state.update(_layer_norm(f"{prefix}.output.LayerNorm", ffn.norm))
    state.update(_linear("cls.predictions.transform.dense", model.mlm_head.dense))
    state.update(_layer_norm("cls.predictions.transform.LayerNorm", model.mlm_head.norm))
    state["cls.predictions.bias"] = model.mlm_head.bias
    if model.pair_head is not None:  # BertForMaskedLM has neither
        state.update(_linear("bert.pooler.dense", model.pooler))
        state.update(_linear("cls.seq_relationship", model.pair_head))
    return state


def _albert_state_dict(model: PreTrainingModel) -> dict[str, torch.Tensor]:
    # predictions.decoder.{weight,bias} are tied (AlbertForPreTraining._tied_weights_keys).
    config = model.config
    state = _embeddings("albert.embeddings", model)
    projection = model.embeddings.projection
    if projection is not None:
        state.update(_linear("albert.encoder.embedding_hidden_mapping_in", projection))
    else:  # E = H: ALBERT always has the mapping; the identity leaves the embeddings unchanged
        h = config.hidden_size
        state["albert.encoder.embedding_hidden_mapping_in.weight"] = torch.eye(h)
        state["albert.encoder.embedding_hidden_mapping_in.bias"] = torch.zeros(h)
    # share "all": one attention and one ffn module -> group 0; "none": module i -> group i
    for group, (attention, ffn) in enumerate(zip(model.encoder.attention, model.encoder.ffn,
                                                 strict=True)):
        prefix = f"albert.encoder.albert_layer_groups.{group}.albert_layers.0"
        state.update(_split_qkv(f"{prefix}.attention.", attention.qkv))
        state.update(_linear(f"{prefix}.attention.dense", attention.dense))
        state.update(_layer_norm(f"{prefix}.attention.LayerNorm", attention.norm))
        state.update(_linear(f"{prefix}.ffn", ffn.up))
        state.update(_linear(f"{prefix}.ffn_output", ffn.down))
        state.update(_layer_norm(f"{prefix}.full_layer_layer_norm", ffn.norm))
    state.update(_linear("predictions.dense", model.mlm_head.dense))
    state.update(_layer_norm("predictions.LayerNorm", model.mlm_head.norm))
    state["predictions.bias"] = model.mlm_head.bias
    if model.pair_head is not None:  # AlbertForMaskedLM has neither
        state.update(_linear("albert.pooler", model.pooler))
        state.update(_linear("sop_classifier.classifier", model.pair_head))
    return state


def _save_safetensors(state: dict[str, torch.Tensor], path: str) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError as error:
        raise ImportError("export_huggingface needs the safetensors package "
                          "(pip install safetensors)") from error
    # safetensors refuses views and shared storage: give every tensor its own float32 copy.
    tensors = {name: tensor.detach().to("cpu", torch.float32).clone().contiguous()
               for name, tensor in state.items()}
    save_file(tensors, path, metadata={"format": "pt"})


# --- tokenizer ---------------------------------------------------------------------------------

# SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2  # TrainerSpec.ModelType


@dataclass
class SentencePieceModel:
    """The fields of a SentencePiece ModelProto that a tokenizers pipeline needs."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)  # (piece, score, type)
    model_type: int = UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


def read_sentencepiece_model(data: bytes) -> SentencePieceModel:
    """Parses a serialized ``sentencepiece.ModelProto`` with a minimal protobuf wire-format
    reader (field numbers from sentencepiece_model.proto); unknown fields are skipped."""
    model = SentencePieceModel()
    for number, value in _protobuf_fields(data):
        if number == 1:  # repeated SentencePiece pieces
            piece, score, kind = "", 0.0, NORMAL
            for sub_number, sub_value in _protobuf_fields(value):
                if sub_number == 1:
                    piece = sub_value.decode("utf-8")
                elif sub_number == 2:
                    score = struct.unpack("<f", sub_value)[0]
                elif sub_number == 3:
                    kind = sub_value
            model.pieces.append((piece, score, kind))
        elif number == 2:  # TrainerSpec
            for sub_number, sub_value in _protobuf_fields(value):
                if sub_number == 3:
                    model.model_type = sub_value
                elif sub_number == 35:
                    model.byte_fallback = bool(sub_value)
                elif sub_number == 40:
                    model.unk_id = sub_value
        elif number == 3:  # NormalizerSpec
            for sub_number, sub_value in _protobuf_fields(value):
                if sub_number == 2:
                    model.precompiled_charsmap = bytes(sub_value)
                elif sub_number == 3:
                    model.add_dummy_prefix = bool(sub_value)
                elif sub_number == 4:
                    model.remove_extra_whitespaces = bool(sub_value)
    return model


def _protobuf_fields(data: bytes):
    """(field number, value) of each field of a protobuf message: an int for varints, bytes
    for length-delimited and fixed-size fields."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = data[position:position + size], position + size
        else:
            raise ValueError(f"not a SentencePiece model: protobuf wire type {wire_type}")
        if position > len(data):
            raise ValueError("not a SentencePiece model: truncated protobuf field")
        yield number, value


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("not a SentencePiece model: truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, position


def huggingface_tokenizer(model_bytes: bytes, special_tokens: dict[str, int]):
    """A ``tokenizers.Tokenizer`` that encodes like the SentencePiece model ``model_bytes``
    and adds [CLS] A [SEP] (B [SEP]) with token types 0 (1)."""
    try:
        from tokenizers import (
            AddedToken,
            Regex,
            Tokenizer,
            decoders,
            models,
            normalizers,
            pre_tokenizers,
            processors,
        )
    except ImportError as error:
        raise ImportError("export_huggingface needs the tokenizers package "
                          "(pip install tokenizers, or transformers)") from error

    spm = read_sentencepiece_model(model_bytes)
    if spm.model_type == UNIGRAM:
        backend = models.Unigram(_unigram_vocab(spm), unk_id=spm.unk_id,
                                 byte_fallback=spm.byte_fallback)
    elif spm.model_type == BPE:
        backend = models.BPE(*_bpe_vocab_and_merges(spm), unk_token=spm.pieces[spm.unk_id][0],
                             fuse_unk=True, byte_fallback=spm.byte_fallback)
    else:
        raise ValueError(f"SentencePiece model type {spm.model_type} is neither unigram nor bpe")
    tokenizer = Tokenizer(backend)

    # SentencePiece: normalize with its compiled table (nmt_nfkc), strip and collapse spaces,
    # prefix "▁" and replace spaces by it; pieces never cross a "▁" (split_by_whitespace).
    steps = [normalizers.Precompiled(spm.precompiled_charsmap)] if spm.precompiled_charsmap else []
    if spm.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True),
                  normalizers.Replace(Regex(" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    prepend = "always" if spm.add_dummy_prefix else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE,
                                                       prepend_scheme=prepend, split=True)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(METASPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        + ([decoders.Strip(content=" ", left=1, right=0)] if spm.add_dummy_prefix else []))

    # Control symbols ([CLS], [SEP], [MASK], [PAD]) and [UNK] are special tokens. User-defined
    # symbols (the PII placeholders) stay in the unigram lattice (see _unigram_vocab), which
    # keeps the "▁" before them as SentencePiece does; an added token would swallow it. BPE has
    # no such lattice, so there they are added tokens.
    added = (CONTROL, UNKNOWN) if spm.model_type == UNIGRAM else (CONTROL, UNKNOWN, USER_DEFINED)
    tokenizer.add_tokens([AddedToken(piece, normalized=False, special=kind != USER_DEFINED)
                          for piece, _, kind in spm.pieces if kind in added])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", special_tokens["[CLS]"]), ("[SEP]", special_tokens["[SEP]"])])
    return tokenizer


def _unigram_vocab(spm: SentencePieceModel) -> list[tuple[str, float]]:
    """(piece, score) in id order, with SentencePiece's score for user-defined pieces:
    ``length * max_score - 0.1`` (unigram_model.cc), so a user-defined symbol always wins
    over any split of its characters."""
    max_score = max((score for _, score, kind in spm.pieces if kind == NORMAL), default=0.0)
    return [(piece, len(piece) * max_score - 0.1 if kind == USER_DEFINED else score)
            for piece, score, kind in spm.pieces]


def _bpe_vocab_and_merges(spm: SentencePieceModel) -> tuple[dict[str, int], list[tuple]]:
    """SentencePiece BPE as vocab + merges: a normal piece is the merge of every split of it
    into two normal pieces, ranked by the piece's id (SentencePiece orders ids by score)."""
    vocab = {piece: i for i, (piece, _, _) in enumerate(spm.pieces)}
    normal = {piece for piece, _, kind in spm.pieces if kind == NORMAL}
    merges = []
    for piece_id, (piece, _, kind) in enumerate(spm.pieces):
        if kind != NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                merges.append((piece_id, vocab[left], vocab[right], left, right))
    return vocab, [(left, right) for *_, left, right in sorted(merges)]


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")
