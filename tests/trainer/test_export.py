import io
import json
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
sentencepiece = pytest.importorskip("sentencepiece")

from winnow.trainer.export import (  # noqa: E402
    BYTE,
    CONTROL,
    NORMAL,
    USER_DEFINED,
    export_huggingface,
    huggingface_architecture,
    read_sentencepiece_model,
)
from winnow.trainer.model import ModelConfig, PreTrainingModel  # noqa: E402

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Cats and dogs sleep in the warm sun after lunch.",
    "Write to <EMAIL> for the report about 1,000 birds.",
    "Ünïcode àccents stay as they are, naïve café.",
] * 40
SPECIAL_PIECES = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_sentencepiece(model_type: str = "unigram") -> bytes:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES), model_writer=model, model_type=model_type,
        vocab_size=320, pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]",
        bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        user_defined_symbols=["<EMAIL>"], byte_fallback=True, hard_vocab_limit=False,
        num_threads=1, minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spm") / "tokenizer.model"
    path.write_bytes(train_sentencepiece())
    return str(path)


@pytest.fixture(scope="module")
def processor(spm_path):
    return sentencepiece.SentencePieceProcessor(model_file=spm_path)


@pytest.fixture(scope="module")
def special_tokens(processor) -> dict[str, int]:
    return {piece: (processor.unk_id() if piece == "[UNK]" else processor.piece_to_id(piece))
            for piece in SPECIAL_PIECES}


def tiny(processor, **overrides) -> ModelConfig:
    return ModelConfig(**{"vocab_size": processor.get_piece_size(), "max_seq_len": 32,
                          "num_layers": 2, "hidden_size": 64, "num_heads": 4,
                          "intermediate_size": 128, **overrides})


def random_inputs(vocab_size: int):
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, vocab_size, (3, 20), generator=generator)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 9:] = 1
    attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
    attention_mask[1, 14:] = False
    return input_ids, token_type_ids, attention_mask


CASES = [
    # (overrides, HF class, pair logits attribute)
    ({}, "BertForPreTraining", "seq_relationship_logits"),
    ({"embedding_size": 32, "share_layers": "all"}, "AlbertForPreTraining", "sop_logits"),
    ({"share_layers": "all"}, "AlbertForPreTraining", "sop_logits"),
    ({"embedding_size": 32}, "AlbertForPreTraining", "sop_logits"),
]


@pytest.mark.parametrize("overrides, class_name, pair_attribute", CASES)
def test_exported_model_gives_our_logits(tmp_path, processor, spm_path, special_tokens,
                                         overrides, class_name, pair_attribute):
    config = tiny(processor, **overrides)
    torch.manual_seed(0)
    model = PreTrainingModel(config)
    with torch.no_grad():  # non-trivial biases and LayerNorms, so a mis-mapped one shows
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.eval()
    assert huggingface_architecture(config) == class_name
    directory = export_huggingface(model, spm_path, str(tmp_path / "hf"), special_tokens)

    hf_class = getattr(transformers, class_name)
    hf_model, info = hf_class.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    hf_model.eval()
    auto_model = transformers.AutoModelForPreTraining.from_pretrained(directory)
    assert type(auto_model) is hf_class

    input_ids, token_type_ids, attention_mask = random_inputs(config.vocab_size)
    with torch.no_grad():
        ours = model(input_ids, token_type_ids, attention_mask)
        theirs = hf_model(input_ids=input_ids, token_type_ids=token_type_ids,
                          attention_mask=attention_mask.long())
    assert torch.allclose(theirs.prediction_logits, ours.mlm_logits, atol=1e-4)
    assert torch.allclose(getattr(theirs, pair_attribute), ours.pair_logits, atol=1e-4)
    # the tied decoder really is the word embedding after loading
    assert (hf_model.get_output_embeddings().weight.data_ptr()
            == hf_model.get_input_embeddings().weight.data_ptr())


def test_config_json_describes_the_model(tmp_path, processor, spm_path, special_tokens):
    config = tiny(processor, embedding_size=32, share_layers="all", dropout=0.0,
                  layer_norm_eps=1e-6)
    directory = export_huggingface(PreTrainingModel(config), spm_path, str(tmp_path),
                                   special_tokens)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "albert"
    assert written["architectures"] == ["AlbertForPreTraining"]
    assert (written["vocab_size"], written["embedding_size"], written["hidden_size"],
            written["num_hidden_layers"], written["num_hidden_groups"],
            written["max_position_embeddings"]) == (config.vocab_size, 32, 64, 2, 1, 32)
    assert written["hidden_act"] == "gelu"
    assert written["layer_norm_eps"] == 1e-6 and written["hidden_dropout_prob"] == 0.0
    assert written["pad_token_id"] == special_tokens["[PAD]"]
    assert sorted(os.listdir(directory)) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "spiece.model",
        "tokenizer.json", "tokenizer_config.json"]


def test_tokenizer_encodes_a_pair_with_our_ids(tmp_path, processor, spm_path, special_tokens):
    config = tiny(processor)
    directory = export_huggingface(PreTrainingModel(config), spm_path, str(tmp_path),
                                   special_tokens)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    assert len(tokenizer) == processor.get_piece_size()
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
            tokenizer.mask_token_id, tokenizer.unk_token_id) == tuple(
        special_tokens[p] for p in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"))

    a, b = "The quick fox sleeps.", "Write to <EMAIL> now, Ünïcode!"
    encoded = tokenizer(a, b)
    cls, sep = special_tokens["[CLS]"], special_tokens["[SEP]"]
    ids_a, ids_b = processor.encode(a), processor.encode(b)
    assert encoded["input_ids"] == [cls, *ids_a, sep, *ids_b, sep]
    assert encoded["token_type_ids"] == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == f"{a} {b}"


@pytest.mark.parametrize("text", [
    "emoji 🦊 and 漢字 fall back to bytes",  # not [UNK]: byte fallback is kept
    "  extra   spaces\tand\nnewlines  ",
    "``quotes'' and ｆｕｌｌｗｉｄｔｈ ﬁ",  # SentencePiece's own normalization (nmt_nfkc)
    "x<EMAIL>y <EMAIL>",
    "no accent stripping: café naïve Ünïcode",
])
def test_tokenizer_matches_sentencepiece_on_hard_text(tmp_path, processor, spm_path,
                                                      special_tokens, text):
    export_huggingface(PreTrainingModel(tiny(processor)), spm_path, str(tmp_path),
                       special_tokens)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == processor.encode(text)
    assert special_tokens["[UNK]"] not in ids
    assert tokenizer.decode(ids) == processor.decode(ids)


def test_bpe_tokenizer_matches_sentencepiece(tmp_path, special_tokens):
    path = tmp_path / "bpe.model"
    path.write_bytes(train_sentencepiece("bpe"))
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    export_huggingface(PreTrainingModel(tiny(processor)), str(path), str(tmp_path / "hf"),
                       special_tokens)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    for text in ("The lazy dog sleeps in the sun.", "emoji 🦊 café"):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == processor.encode(text)


def test_read_sentencepiece_model_without_protobuf(spm_path, processor):
    with open(spm_path, "rb") as handle:
        model = read_sentencepiece_model(handle.read())
    assert len(model.pieces) == processor.get_piece_size()
    assert model.unk_id == processor.unk_id() and model.byte_fallback
    assert model.precompiled_charsmap  # nmt_nfkc
    for piece_id, (piece, score, kind) in enumerate(model.pieces):
        assert piece == processor.id_to_piece(piece_id)
        assert score == pytest.approx(processor.get_score(piece_id))
        assert (kind == CONTROL) == processor.is_control(piece_id)
    kinds = {piece: kind for piece, _, kind in model.pieces}
    assert kinds["<EMAIL>"] == USER_DEFINED and kinds["[CLS]"] == CONTROL
    assert kinds["<0x41>"] == BYTE and kinds["[PAD]"] == CONTROL
    assert {kinds[processor.id_to_piece(i)] for i in processor.encode("lazy dog")} == {NORMAL}


@pytest.mark.parametrize("overrides, problems", [
    ({"pre_layernorm": True}, ["pre_layernorm=True"]),
    ({"share_layers": "attention"}, ["share_layers='attention'"]),
    ({"share_layers": "ffn", "pre_layernorm": True},
     ["pre_layernorm=True", "share_layers='ffn'"]),
])
def test_refuses_what_transformers_cannot_represent(tmp_path, processor, spm_path,
                                                    special_tokens, overrides, problems):
    model = PreTrainingModel(tiny(processor, **overrides))
    with pytest.raises(ValueError, match="cannot export to Hugging Face") as error:
        export_huggingface(model, spm_path, str(tmp_path / "out"), special_tokens)
    for problem in problems:
        assert problem in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_refuses_a_tokenizer_that_does_not_match(tmp_path, processor, spm_path, special_tokens):
    model = PreTrainingModel(tiny(processor))
    with pytest.raises(ValueError, match=r"\[SEP\] is id 3 in .*special_tokens says 9"):
        export_huggingface(model, spm_path, str(tmp_path), {**special_tokens, "[SEP]": 9})
    wrong_vocab = PreTrainingModel(tiny(processor, vocab_size=processor.get_piece_size() + 1))
    with pytest.raises(ValueError, match="vocab_size is"):
        export_huggingface(wrong_vocab, spm_path, str(tmp_path), special_tokens)


def test_a_training_command_shows_the_traceback_only_with_debug(tmp_path, capsys):
    from winnow.cli import main

    argv = ["export", str(tmp_path / "no-run"), "--output", str(tmp_path / "model")]
    assert main(argv) == 2
    plain = capsys.readouterr().err
    assert plain.startswith("winnow export: ") and "Traceback" not in plain
    assert main([*argv, "--debug"]) == 2
    debug = capsys.readouterr().err
    assert "Traceback (most recent call last)" in debug
    assert debug.splitlines()[-1] == plain.strip()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_every_exported_file_has_the_same_mode(tmp_path, processor, spm_path, special_tokens,
                                               umask, mode):
    # safetensors alone would write model.safetensors 0600 whatever the umask
    previous = os.umask(umask)
    try:
        directory = export_huggingface(PreTrainingModel(tiny(processor)), spm_path,
                                       str(tmp_path / "hf"), special_tokens)
    finally:
        os.umask(previous)
    modes = {name: oct(os.stat(os.path.join(directory, name)).st_mode & 0o777)
             for name in os.listdir(directory)}
    assert modes == {name: oct(mode) for name in modes}


@pytest.mark.parametrize("overrides, class_name", [
    ({}, "BertForMaskedLM"), ({"embedding_size": 32, "share_layers": "all"}, "AlbertForMaskedLM")])
def test_an_mlm_model_exports_as_a_masked_lm_with_our_logits(tmp_path, processor, spm_path,
                                                             special_tokens, overrides,
                                                             class_name):
    config = tiny(processor, objective="mlm", **overrides)
    torch.manual_seed(0)
    model = PreTrainingModel(config).eval()
    assert model.pair_head is None and model.pooler is None
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters()
    assert huggingface_architecture(config) == class_name
    directory = export_huggingface(model, spm_path, str(tmp_path / "hf"), special_tokens)
    hf_class = getattr(transformers, class_name)
    hf_model, info = hf_class.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(transformers.AutoModelForMaskedLM.from_pretrained(directory)) is hf_class
    input_ids, token_type_ids, attention_mask = random_inputs(config.vocab_size)
    with torch.no_grad():
        ours = model(input_ids, torch.zeros_like(token_type_ids), attention_mask)
        theirs = hf_model.eval()(input_ids=input_ids, attention_mask=attention_mask.long())
    assert ours.pair_logits is None
    assert torch.allclose(theirs.logits, ours.mlm_logits, atol=1e-4)
