import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from winnow.trainer.model import PRESETS, ModelConfig, PreTrainingModel  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 300
TINY = dict(vocab_size=VOCAB, max_seq_len=32, num_layers=2, hidden_size=64, num_heads=4,
            intermediate_size=128)


def tiny(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY, **overrides})


def build(config: ModelConfig, seed: int = 0) -> PreTrainingModel:
    torch.manual_seed(seed)
    return PreTrainingModel(config)


def batch(b: int = 3, t: int = 16, seed: int = 0):
    """Random inputs, segment B from t // 2, row 1 ends in 4 padding positions, 2 to 3
    masked positions per row."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (b, t), generator=generator)
    token_type_ids = torch.zeros(b, t, dtype=torch.long)
    token_type_ids[:, t // 2:] = 1
    attention_mask = torch.ones(b, t, dtype=torch.bool)
    attention_mask[1, t - 4:] = False
    input_ids[1, t - 4:] = 0
    mlm_labels = torch.full((b, t), -100, dtype=torch.long)
    mlm_labels[:, 2] = input_ids[:, 2]
    mlm_labels[0, t // 2 - 1] = 7
    mlm_labels[b - 1, t // 2 + 1] = 11
    pair_labels = torch.arange(b) % 2
    return input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_output_shapes_with_and_without_labels():
    model = build(tiny())
    input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels = batch()
    out = model(input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels)
    masked = int((mlm_labels != -100).sum())
    assert out.mlm_logits.shape == (masked, VOCAB)
    assert out.mlm_targets.tolist() == mlm_labels[mlm_labels != -100].tolist()
    assert out.pair_logits.shape == (3, 2)
    assert out.loss.shape == out.mlm_loss.shape == out.pair_loss.shape == ()
    assert torch.allclose(out.loss, out.mlm_loss + out.pair_loss)

    out = model(input_ids, token_type_ids, attention_mask)
    assert out.mlm_logits.shape == (3, 16, VOCAB)
    assert out.loss is out.mlm_loss is out.pair_loss is out.mlm_targets is None

    out = model(input_ids, token_type_ids, attention_mask, pair_labels=pair_labels)
    assert out.mlm_loss is None and torch.equal(out.loss, out.pair_loss)


def test_losses_are_cross_entropy_of_the_logits_and_backpropagate():
    model = build(tiny())
    input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels = batch()
    out = model(input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels)
    expected_mlm = torch.nn.functional.cross_entropy(out.mlm_logits, out.mlm_targets)
    expected_pair = torch.nn.functional.cross_entropy(out.pair_logits, pair_labels)
    assert torch.allclose(out.mlm_loss, expected_mlm)
    assert torch.allclose(out.pair_loss, expected_pair)
    # an untrained model is near uniform over the vocabulary
    assert abs(out.mlm_loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 0.5
    out.loss.backward()
    assert model.embeddings.word.weight.grad is not None
    assert all(p.grad is not None for p in model.parameters())


def test_a_batch_without_masked_positions_has_zero_mlm_loss():
    model = build(tiny())
    input_ids, token_type_ids, attention_mask, _, pair_labels = batch()
    no_labels = torch.full_like(input_ids, -100)
    out = model(input_ids, token_type_ids, attention_mask, no_labels, pair_labels)
    assert out.mlm_logits.shape == (0, VOCAB)
    assert out.mlm_loss.item() == 0.0
    out.loss.backward()  # still a graph


def test_gathered_mlm_logits_equal_full_logits_at_masked_positions():
    model = build(tiny()).eval()
    input_ids, token_type_ids, attention_mask, mlm_labels, _ = batch()
    with torch.no_grad():
        full = model(input_ids, token_type_ids, attention_mask).mlm_logits  # (B, T, V)
        gathered = model(input_ids, token_type_ids, attention_mask, mlm_labels).mlm_logits
    assert torch.allclose(gathered, full[mlm_labels != -100], atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"pre_layernorm": True},
                                       {"embedding_size": 32, "share_layers": "all"}])
def test_padding_does_not_change_real_positions(overrides):
    model = build(tiny(**overrides)).eval()
    input_ids, token_type_ids, _, _, _ = batch(b=2, t=10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    # the same rows padded to 16 with arbitrary ids and token types behind a False mask
    padded_ids = torch.cat([input_ids, torch.randint(0, VOCAB, (2, 6))], dim=1)
    padded_types = torch.cat([token_type_ids, torch.ones(2, 6, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 6, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        short = model(input_ids, token_type_ids, mask)
        long = model(padded_ids, padded_types, padded_mask)
    assert torch.allclose(long.mlm_logits[:, :10], short.mlm_logits, atol=1e-5)
    assert torch.allclose(long.pair_logits, short.pair_logits, atol=1e-5)
    # and the mask matters: without it the padding changes the real positions
    with torch.no_grad():
        unmasked = model(padded_ids, padded_types, None)
    assert not torch.allclose(unmasked.mlm_logits[:, :10], short.mlm_logits, atol=1e-3)


def ragged_batch(b: int = 5, t: int = 24, seed: int = 1):
    """Rows of 24, 13, 6, 19 and 9 real tokens (random ids and segments), 2 to 4 predicted
    positions each, one of them on padding (row 2, column 10)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([24, 13, 6, 19, 9])[:b]
    attention_mask = torch.arange(t)[None, :] < lengths[:, None]
    input_ids = torch.randint(5, VOCAB, (b, t), generator=generator).masked_fill(
        ~attention_mask, 0)
    token_type_ids = (torch.arange(t)[None, :] >= lengths[:, None] // 2).long() * attention_mask
    mlm_labels = torch.full((b, t), -100, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        columns = torch.randperm(length - 1, generator=generator)[:3] + 1
        mlm_labels[row, columns] = torch.randint(5, VOCAB, (len(columns),), generator=generator)
    mlm_labels[2, 10] = 42
    return input_ids, token_type_ids, attention_mask, mlm_labels, torch.arange(b) % 2


@pytest.mark.parametrize("overrides", [{}, {"pre_layernorm": True},
                                       {"embedding_size": 32, "share_layers": "all"}])
def test_unpadded_outputs_and_gradients_equal_the_padded_computation(overrides):
    config = tiny(dropout=0.0, attention_dropout=0.0, **overrides)
    padded = build(config)
    torch.manual_seed(0)
    unpadded = PreTrainingModel(config, unpad=True)
    inputs = ragged_batch()
    ffn_inputs = []  # the FFN of the unpadded model sees the real tokens + 1 predicted pad
    unpadded.encoder.ffn[0].register_forward_hook(
        lambda module, args, output: ffn_inputs.append(tuple(args[0].shape)))
    outputs = [model(*inputs) for model in (padded, unpadded)]
    assert ffn_inputs[0] == (24 + 13 + 6 + 19 + 9 + 1, config.hidden_size)
    for name in ("loss", "mlm_loss", "pair_loss", "mlm_logits", "pair_logits"):
        assert torch.allclose(getattr(outputs[0], name), getattr(outputs[1], name),
                              atol=1e-5), name
    assert torch.equal(outputs[0].mlm_targets, outputs[1].mlm_targets)
    for out in outputs:
        out.loss.backward()
    for (name, mine), theirs in zip(padded.named_parameters(), unpadded.parameters(),
                                    strict=True):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-6), name
    # without labels every position has MLM logits: computed in full either way
    with torch.no_grad():
        assert torch.allclose(padded(*inputs[:3]).mlm_logits, unpadded(*inputs[:3]).mlm_logits,
                              atol=1e-5)


def test_unpadding_computes_only_the_needed_tokens_on_a_trimmed_grid():
    from winnow.trainer.model import TokenLayout

    input_ids, _, attention_mask, mlm_labels, _ = ragged_batch()
    trimmed = attention_mask.clone()
    trimmed[0, 19:] = False  # the longest row now has 19 real tokens
    mlm_labels[0, 19:] = -100
    computed = trimmed | (mlm_labels != -100)
    computed[:, 0] = True
    layout = TokenLayout.unpadded(trimmed, computed)
    last = int(computed.any(dim=0).nonzero().max())
    assert layout.grid == (5, 19)
    # the real tokens and the predicted padding position, nothing else
    assert len(layout.index) == int(computed.sum()) == 19 + 13 + 6 + 19 + 9 + 1
    assert torch.equal(layout.gather(input_ids), input_ids[computed])
    assert torch.equal(layout.key_mask.view(5, -1), trimmed[:, :last + 1])
    grid = layout.to_grid(layout.gather(input_ids)[:, None].float())[..., 0]  # (B, L)
    assert torch.equal(grid, torch.where(computed, input_ids, 0)[:, :last + 1].float())
    assert torch.equal(layout.from_grid(grid[..., None])[:, 0].long(), input_ids[computed])
    assert torch.equal(layout.first_tokens(layout.gather(input_ids)), input_ids[:, 0])
    # a batch without padding is a plain view: no index, no mask
    full = TokenLayout.unpadded(torch.ones(2, 8, dtype=torch.bool),
                                torch.ones(2, 8, dtype=torch.bool))
    assert full.index is None and full.key_mask is None and full.grid == (2, 8)


def test_eval_is_deterministic_and_train_applies_dropout():
    model = build(tiny(dropout=0.3, attention_dropout=0.3))
    input_ids, token_type_ids, attention_mask, _, _ = batch()
    with torch.no_grad():
        model.eval()
        first = model(input_ids, token_type_ids, attention_mask).mlm_logits
        second = model(input_ids, token_type_ids, attention_mask).mlm_logits
        model.train()
        noisy = model(input_ids, token_type_ids, attention_mask).mlm_logits
    assert torch.equal(first, second)
    assert not torch.allclose(first, noisy, atol=1e-3)


@pytest.mark.parametrize("share_layers", ["none", "all", "attention", "ffn"])
@pytest.mark.parametrize("embedding_size", [None, 64, 32])
@pytest.mark.parametrize("pre_layernorm", [False, True])
def test_num_parameters_matches_the_built_model(share_layers, embedding_size, pre_layernorm):
    config = tiny(num_layers=3, share_layers=share_layers, embedding_size=embedding_size,
                  pre_layernorm=pre_layernorm)
    assert config.num_parameters() == count(PreTrainingModel(config))


def test_the_decoder_is_tied_to_the_word_embeddings():
    model = build(tiny())
    names = [name for name, _ in model.named_parameters()]
    assert not any("decoder" in name for name in names)
    with torch.no_grad():
        model.embeddings.word.weight[7].zero_()
        model.mlm_head.bias.zero_()
        logits = model(*batch()[:3]).mlm_logits
    assert torch.all(logits[..., 7] == 0)  # the decoder row of id 7 is the embedding row


def test_sharing_all_layers_costs_one_layer():
    one_layer = tiny(num_layers=1).num_parameters()
    assert tiny(num_layers=6, share_layers="all").num_parameters() == one_layer
    unshared = tiny(num_layers=6).num_parameters()
    attention_only = tiny(num_layers=6, share_layers="attention").num_parameters()
    ffn_only = tiny(num_layers=6, share_layers="ffn").num_parameters()
    assert one_layer < attention_only < unshared and one_layer < ffn_only < unshared
    model = PreTrainingModel(tiny(num_layers=6, share_layers="all"))
    assert len(model.encoder.attention) == len(model.encoder.ffn) == 1


def test_factorized_embeddings_shrink_the_embedding_table():
    h, e = 64, 16
    full = tiny(hidden_size=h).num_parameters()
    factorized = tiny(hidden_size=h, embedding_size=e).num_parameters()
    # tables (V + T + types) * (H - E) smaller; + projection E*H + H; MLM head H*H -> H*E etc.
    assert factorized < full
    model = PreTrainingModel(tiny(hidden_size=h, embedding_size=e))
    assert model.embeddings.word.weight.shape == (VOCAB, e)
    assert model.embeddings.projection.weight.shape == (h, e)
    assert tiny(embedding_size=64).num_parameters() == full  # E = H is plain BERT


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_the_table_sizes(name):
    layers, hidden = PRESETS[name]
    config = ModelConfig.preset(name, vocab_size=1000, dropout=0.0)
    assert (config.num_layers, config.hidden_size) == (layers, hidden)
    assert config.num_heads == hidden // 64
    assert config.intermediate_size == 4 * hidden
    assert config.dropout == 0.0 and config.vocab_size == 1000


def test_bert_base_has_110m_parameters():
    config = ModelConfig.preset("base", vocab_size=30522, max_seq_len=512)
    # transformers' BertForPreTraining of bert-base-uncased: 109,482,240 in BertModel plus the
    # heads (transform 592,128, decoder bias 30,522, seq_relationship 1,538).
    assert config.num_parameters() == 110_106_428
    large = ModelConfig.preset("large", vocab_size=30522, max_seq_len=512).num_parameters()
    assert 335e6 < large < 337e6


def test_flops_per_token_formula():
    config = tiny()
    h, i, layers, t = 64, 128, 2, 32
    per_layer = (4 * h * h + 4 * h + 2 * h) + (2 * h * i + i + h + 2 * h)
    assert config.flops_per_token(t) == 6 * layers * per_layer + 12 * layers * h * t
    # sharing saves parameters, not compute: every layer still runs
    assert tiny(share_layers="all").flops_per_token(t) == config.flops_per_token(t)
    # the attention term grows with the sequence length, not halved
    assert config.flops_per_token(2 * t) - config.flops_per_token(t) == 12 * layers * h * t
    with_head = config.flops_per_token(t, masked_fraction=0.15)
    assert with_head == pytest.approx(config.flops_per_token(t)
                                      + 6 * 0.15 * (h * h + h + h * VOCAB))
    factorized = tiny(embedding_size=16)
    assert factorized.flops_per_token(t) == config.flops_per_token(t) + 6 * (16 * h + h)


def test_config_collects_every_problem():
    with pytest.raises(ValueError) as error:
        ModelConfig(vocab_size=0, hidden_size=65, num_heads=4, share_layers="some",
                    objective="bert", dropout=1.5, pad_token_id=3)
    message = str(error.value)
    for part in ("vocab_size must be in [1, 4294967296], got 0",
                 "hidden_size 65 is not a multiple of num_heads 4",
                 "share_layers must be one of", "objective must be one of",
                 "dropout must be in [0, 1)", "pad_token_id 3"):
        assert part in message
    with pytest.raises(ValueError, match="num_layers must be an integer"):
        ModelConfig(vocab_size=10, num_layers="2")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        ModelConfig.preset("huge", vocab_size=10)


def test_too_long_input_is_refused():
    model = build(tiny(max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len 8"):
        model(*batch(t=9)[:3])


def test_trainer_model_and_export_import_neither_beam_nor_pipeline():
    code = ("import sys, winnow.trainer.model, winnow.trainer.export; "
            "bad = [m for m in sys.modules if m.startswith(('apache_beam', 'winnow.pipeline'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_autocast_on_cuda_matches_fp32():
    model = build(tiny()).cuda().eval()
    input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels = (
        x.cuda() for x in batch())
    with torch.no_grad():
        reference = model(input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            mixed = model(input_ids, token_type_ids, attention_mask, mlm_labels, pair_labels)
    assert mixed.mlm_logits.dtype == torch.bfloat16
    assert torch.allclose(mixed.mlm_logits.float(), reference.mlm_logits, atol=0.05, rtol=0.05)
    assert torch.allclose(mixed.pair_logits.float(), reference.pair_logits, atol=0.05)
    assert abs(mixed.loss.item() - reference.loss.item()) < 0.05
