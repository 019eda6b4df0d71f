"""BERT and ALBERT encoders with their two pretraining heads (masked LM and sentence pair).

The computation is exactly what Hugging Face's ``BertForPreTraining`` and ``AlbertForPreTraining``
do in eval mode, so ``trainer.export`` can write checkpoints that ``transformers`` loads and that
give the same logits. On top of that: factorized embeddings (ALBERT, E < H), cross-layer
sharing of all / attention-only / FFN-only parameters, and a pre-LayerNorm variant (cramming,
Geiping & Goldstein 2022); the last two have no Hugging Face counterpart.

Unpadding (``PreTrainingModel(config, unpad=True)``, what ``winnow pretrain`` runs): given
mlm_labels, the position-wise parts (embeddings, Q/K/V and output projections, FFN, LayerNorms,
the heads) run on the N computed tokens only, flattened to (N, H) (MosaicBERT's unpad/pad idea);
attention scatters Q/K/V back into a (B, L, .) grid, L the batch's longest computed row, so it
costs B L^2 instead of B T^2 (``TokenLayout``). Every output equals the padded computation's
within float rounding: padding keys are masked out either way, and the tokens dropped are
neither [CLS] nor predicted, so no output reads them.

Read top to bottom: config, the token layout, embeddings, the two sublayers, the encoder, the
heads, the model. Shapes: B batch, T sequence, L the grid attention runs on (T when padded),
N computed tokens, H hidden, E embedding, I intermediate, V vocab, M masked positions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from winnow.schemas.shard_format import MAX_SEQ_LEN_LIMIT

# name -> (layers, hidden): the miniature BERTs of Turc et al. 2019 ("Well-read students learn
# better") plus base and large. heads = hidden // 64, intermediate = 4 * hidden.
PRESETS = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}

# Upper bounds of the sizes, checked with the config before anything is allocated: several
# times the largest published encoders (ALBERT-xxlarge: H 4096, I 16384; Megatron-BERT 3.9B:
# 48 layers), so a typo is refused instead of failing on allocation. max_seq_len: the limit of
# the shards (schemas.shard_format.MAX_SEQ_LEN_LIMIT); vocab_size: what uint32 ids can hold.
SIZE_LIMITS = {
    "vocab_size": 2**32,
    "max_seq_len": MAX_SEQ_LEN_LIMIT,
    "num_layers": 256,
    "hidden_size": 16384,
    "num_heads": 256,
    "intermediate_size": 65536,
    "embedding_size": 16384,
    "type_vocab_size": 16,
}
SHARE_MODES = ("none", "all", "attention", "ffn")
OBJECTIVES = ("sop", "nsp", "mlm")
MLM_ONLY = "mlm"
"""The objective without a pair head: masked LM alone, on packed shards (RoBERTa)."""
IGNORE_INDEX = -100  # mlm_labels value of a position that is not predicted (as in PyTorch and HF)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    """SentencePiece pieces; the word embedding rows and the MLM classes (the manifest's)."""
    max_seq_len: int = 128
    """Rows of the position embedding table: the longest sequence, special tokens included."""
    num_layers: int = 12
    """Transformer layers applied (a shared layer counts every time it is applied)."""
    hidden_size: int = 768
    """H: width of the residual stream."""
    num_heads: int = 12
    """Attention heads; must divide hidden_size."""
    intermediate_size: int = 3072
    """I: width of the feed-forward sublayer, usually 4 * H."""
    embedding_size: int | None = None
    """E: ALBERT's factorized embeddings. When set and != H, word/position/type embeddings have
    size E and a Linear E -> H (``embedding_hidden_mapping_in``) follows them, and the MLM head
    maps H -> E before the tied decoder. None means E = H (BERT)."""
    share_layers: str = "none"
    """Cross-layer parameter sharing: "none" (BERT), "all" (ALBERT: one layer applied
    num_layers times), "attention" or "ffn" (share only that sublayer; ALBERT paper, table 4)."""
    pre_layernorm: bool = False
    """False: post-LN, BERT's LayerNorm(x + sublayer(x)). True: x + sublayer(LayerNorm(x)) and a
    final LayerNorm, more stable at small budgets (cramming); not exportable to HF."""
    dropout: float = 0.1
    """Dropout on embeddings and on each sublayer's output (HF ``hidden_dropout_prob``)."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities (HF ``attention_probs_dropout_prob``)."""
    type_vocab_size: int = 2
    """Token type (segment) embeddings: 0 for [CLS] A [SEP], 1 for B [SEP]."""
    layer_norm_eps: float = 1e-12
    """Epsilon of every LayerNorm (BERT's 1e-12)."""
    objective: str = "sop"
    """Meaning of the pair head's label 1: "sop" (A and B swapped, ALBERT) or "nsp" (B from
    another document, BERT). Two classes either way; decides the HF head name on export.
    "mlm": no pooler and no pair head (masked LM only; exports as ...ForMaskedLM)."""
    pad_token_id: int = 0
    """Id of [PAD]; written to the exported config (the model itself masks by attention_mask)."""

    def __post_init__(self) -> None:
        problems = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ("dropout", "attention_dropout", "layer_norm_eps"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append(f"{field.name} must be a number, got {value!r}")
            elif field.name in ("share_layers", "objective"):
                if not isinstance(value, str):
                    problems.append(f"{field.name} must be a string, got {value!r}")
            elif field.name == "pre_layernorm":
                if not isinstance(value, bool):
                    problems.append(f"pre_layernorm must be true or false, got {value!r}")
            elif field.name == "embedding_size" and value is None:
                continue
            elif isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{field.name} must be an integer, got {value!r}")
        if problems:  # the range checks below assume the types
            raise ValueError("invalid ModelConfig:\n  " + "\n  ".join(problems))

        for name, limit in SIZE_LIMITS.items():
            value = getattr(self, name)
            if value is not None and not 1 <= value <= limit:
                problems.append(f"{name} must be in [1, {limit}], got {value}")
        if self.num_heads >= 1 and self.hidden_size % self.num_heads:
            problems.append(f"hidden_size {self.hidden_size} is not a multiple of "
                            f"num_heads {self.num_heads}")
        if self.share_layers not in SHARE_MODES:
            problems.append(f"share_layers must be one of {SHARE_MODES}, "
                            f"got {self.share_layers!r}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.layer_norm_eps < 1:
            problems.append(f"layer_norm_eps must be in (0, 1), got {self.layer_norm_eps}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            problems.append(f"pad_token_id {self.pad_token_id} is not in "
                            f"[0, vocab_size={self.vocab_size})")
        if problems:
            raise ValueError("invalid ModelConfig:\n  " + "\n  ".join(problems))

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """The config of a PRESETS size; ``vocab_size`` (and anything else) from ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        layers, hidden = PRESETS[name]
        sizes = dict(num_layers=layers, hidden_size=hidden, num_heads=hidden // 64,
                     intermediate_size=4 * hidden)
        return cls(**{**sizes, **overrides})

    @property
    def factorized(self) -> bool:
        """True when embeddings have their own size E != H (and a Linear E -> H follows)."""
        return self.embedding_size is not None and self.embedding_size != self.hidden_size

    @property
    def embedding_dim(self) -> int:
        """E: the width of the embedding tables, the MLM head's transform and the decoder."""
        return self.embedding_size if self.factorized else self.hidden_size

    @property
    def num_attention_modules(self) -> int:
        """Distinct attention sublayers (1 when shared)."""
        return 1 if self.share_layers in ("all", "attention") else self.num_layers

    @property
    def num_ffn_modules(self) -> int:
        """Distinct feed-forward sublayers (1 when shared)."""
        return 1 if self.share_layers in ("all", "ffn") else self.num_layers

    def _attention_parameters(self) -> int:
        h = self.hidden_size
        return 3 * h * h + 3 * h + h * h + h + 2 * h  # qkv, output dense, LayerNorm

    def _ffn_parameters(self) -> int:
        h, i = self.hidden_size, self.intermediate_size
        return h * i + i + i * h + h + 2 * h  # up, down, LayerNorm

    @property
    def has_pair_head(self) -> bool:
        """A pooler and a sentence-pair head: every objective but "mlm"."""
        return self.objective != MLM_ONLY

    def num_parameters(self) -> int:
        """Parameters of ``PreTrainingModel(self)``, shared and tied ones counted once."""
        h, e, v = self.hidden_size, self.embedding_dim, self.vocab_size
        embeddings = (v + self.max_seq_len + self.type_vocab_size) * e + 2 * e
        if self.factorized:
            embeddings += e * h + h
        encoder = (self.num_attention_modules * self._attention_parameters()
                   + self.num_ffn_modules * self._ffn_parameters()
                   + (2 * h if self.pre_layernorm else 0))
        pooler_and_pair_head = h * h + h + 2 * h + 2 if self.has_pair_head else 0
        mlm_head = h * e + e + 2 * e + v  # transform dense, LayerNorm, decoder bias (weight tied)
        return embeddings + encoder + pooler_and_pair_head + mlm_head

    def flops_per_token(self, seq_len: int, masked_fraction: float = 0.0) -> float:
        """Training FLOPs (forward + backward) per token: 6 N + 12 L H T (FIELD-NOTES, Kaplan
        et al. 2020 appendix; the attention term is not halved: an encoder attends both ways).

        N counts the parameters each token is multiplied with: num_layers full layers (a shared
        layer counts each time it is applied, so sharing saves parameters, not FLOPs), plus the
        E -> H projection when factorized. Embedding lookups and the per-sequence pooler and
        pair head are left out. The MLM head runs only at masked positions (gathered), so its
        H*E + E*V parameters count ``masked_fraction`` times (default 0: the plain 6 N formula;
        0.15 adds about 4% for BERT-base).
        """
        h, e = self.hidden_size, self.embedding_dim
        n = self.num_layers * (self._attention_parameters() + self._ffn_parameters())
        if self.factorized:
            n += e * h + h
        n += masked_fraction * (h * e + e + e * self.vocab_size)
        return 6.0 * n + 12.0 * self.num_layers * h * seq_len


# --- the token layout --------------------------------------------------------------------------

@dataclass
class TokenLayout:
    """Where the tokens the encoder computes sit in the (B, L) grid attention runs on.

    Padded: hidden states are (B, T, H), ``index`` is None. Unpadded: they are (N, H), the
    computed tokens in row-major (b, t) order, and ``index`` (N,) their flat positions in the
    (B, L) grid; a batch without padding keeps ``index`` None and is a plain view.
    """

    grid: tuple[int, int]
    """(B, L): B rows of L positions."""
    key_mask: torch.Tensor | None
    """(B, 1, 1, L) bool, True where a key is a real token; None when every key is."""
    index: torch.Tensor | None = None
    """(N,) long: flat (B * L) grid position of each computed token; None: all of the grid."""
    flat: bool = False
    """Whether hidden states are (N, H) (unpadded) rather than (B, L, H)."""
    first: torch.Tensor | None = None
    """(B,) long, unpadded: the index in N of each row's position 0 (always computed)."""

    @classmethod
    def padded(cls, attention_mask: torch.Tensor | None, b: int, t: int) -> TokenLayout:
        key_mask = None if attention_mask is None else attention_mask.view(b, 1, 1, t)
        return cls(grid=(b, t), key_mask=key_mask)

    @classmethod
    def unpadded(cls, attention_mask: torch.Tensor, computed: torch.Tensor) -> TokenLayout:
        """``attention_mask``: (B, T) bool real tokens (the keys); ``computed``: (B, T) bool
        tokens whose hidden states are needed (real, [CLS], predicted). The grid is trimmed
        to the last column any row computes."""
        b = computed.shape[0]
        # data-dependent shapes: these read the device (a GPU sync per forward, as MosaicBERT)
        length = int(computed.any(dim=0).nonzero().max()) + 1  # L
        computed = computed[:, :length]
        keys = attention_mask[:, :length]
        key_mask = None if bool(keys.all()) else keys.reshape(b, 1, 1, length)
        index = None if bool(computed.all()) else computed.reshape(-1).nonzero().squeeze(1)
        per_row = computed.sum(dim=1)  # (B,)
        return cls(grid=(b, length), key_mask=key_mask, index=index, flat=True,
                   first=per_row.cumsum(dim=0) - per_row)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) per-token values (labels, ids) -> those of the computed tokens: (N, ...)
        unpadded, (B, T, ...) unchanged padded."""
        if not self.flat:
            return values
        b, length = self.grid
        values = values[:, :length].reshape(b * length, *values.shape[2:])
        return values if self.index is None else values.index_select(0, self.index)

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) computed tokens -> (B, L, C), zeros at the positions not computed."""
        if not self.flat:
            return x
        b, length = self.grid
        if self.index is not None:
            x = x.new_zeros(b * length, x.shape[-1]).index_copy(0, self.index, x)
        return x.view(b, length, -1)

    def from_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (N, C) at the computed tokens (the inverse of ``to_grid``)."""
        if not self.flat:
            return x
        x = x.reshape(-1, x.shape[-1])
        return x if self.index is None else x.index_select(0, self.index)

    def first_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H): the hidden state of each row's position 0 ([CLS])."""
        return x.index_select(0, self.first) if self.flat else x[:, 0]


# --- embeddings --------------------------------------------------------------------------------

class Embeddings(nn.Module):
    """word + position + token type, LayerNorm, dropout (+ Linear E -> H when factorized)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        e = config.embedding_dim
        self.word = nn.Embedding(config.vocab_size, e)
        self.position = nn.Embedding(config.max_seq_len, e)
        self.token_type = nn.Embedding(config.type_vocab_size, e)
        self.norm = nn.LayerNorm(e, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.projection = nn.Linear(e, config.hidden_size) if config.factorized else None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids, token_type_ids: (B, T) or (N,) long; positions: (N,) long, the column of
        # each token (None: 0 .. T-1 of a (B, T) batch)
        if positions is None:
            positions = torch.arange(input_ids.size(1), device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)
        x = self.dropout(self.norm(x))  # (B, T, E) or (N, E)
        if self.projection is not None:
            x = self.projection(x)  # (..., H)
        return x


# --- the two sublayers -------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head self-attention with its residual connection and LayerNorm.

    post-LN: LayerNorm(x + dropout(dense(attn(x)))); pre-LN: x + dropout(dense(attn(LN(x)))).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_heads
        self.pre_layernorm = config.pre_layernorm
        self.attention_dropout = config.attention_dropout
        self.qkv = nn.Linear(h, 3 * h)  # query, key, value in one matmul; split on export
        self.dense = nn.Linear(h, h)
        self.norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        # x: (B, T, H) padded or (N, H) unpadded (see TokenLayout)
        h = x.shape[-1]
        y = self.norm(x) if self.pre_layernorm else x
        qkv = layout.to_grid(self.qkv(y))  # (B, L, 3H)
        b, length = qkv.shape[:2]
        q, k, v = (z.view(b, length, self.num_heads, h // self.num_heads).transpose(1, 2)
                   for z in qkv.split(h, dim=2))  # 3 x (B, heads, L, H / heads)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=layout.key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0)  # (B, heads, L, H/heads)
        y = layout.from_grid(y.transpose(1, 2).reshape(b, length, h))  # like x
        y = self.dropout(self.dense(y))
        return x + y if self.pre_layernorm else self.norm(x + y)


class FeedForward(nn.Module):
    """Linear H -> I, exact (erf) GELU, Linear I -> H, with residual and LayerNorm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_layernorm = config.pre_layernorm
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, H) or (N, H): position-wise
        y = self.norm(x) if self.pre_layernorm else x
        y = self.dropout(self.down(F.gelu(self.up(y))))  # (B, T, I) inside
        return x + y if self.pre_layernorm else self.norm(x + y)


class Encoder(nn.Module):
    """num_layers applications of attention then feed-forward.

    Sharing keeps one module where parameters are shared ("all": one of each, ALBERT) and
    layer i uses module ``i % len(modules)``; every parameter has one name in the state dict.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_layers = config.num_layers
        self.attention = nn.ModuleList(
            SelfAttention(config) for _ in range(config.num_attention_modules))
        self.ffn = nn.ModuleList(FeedForward(config) for _ in range(config.num_ffn_modules))
        self.final_norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
                           if config.pre_layernorm else None)

    def forward(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        # x: (B, T, H) -> (B, T, H), or (N, H) -> (N, H) unpadded
        for i in range(self.num_layers):
            x = self.attention[i % len(self.attention)](x, layout)
            x = self.ffn[i % len(self.ffn)](x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


# --- heads -------------------------------------------------------------------------------------

class MaskedLMHead(nn.Module):
    """dense H -> E, GELU, LayerNorm, then the decoder tied to the word embeddings + a bias."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_dim)
        self.norm = nn.LayerNorm(config.embedding_dim, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        # x: (..., H); word_embeddings: (V, E), the tied decoder weight -> (..., V)
        x = self.norm(F.gelu(self.dense(x)))  # (..., E)
        return F.linear(x, word_embeddings, self.bias)


@dataclass
class PreTrainingOutput:
    loss: torch.Tensor | None
    """mlm_loss + pair_loss, of the terms whose labels were given; None when none were."""
    mlm_loss: torch.Tensor | None
    """Mean cross-entropy over the masked positions (0 when a batch has none)."""
    pair_loss: torch.Tensor | None
    """Mean cross-entropy of the SOP/NSP head."""
    mlm_logits: torch.Tensor | None
    """(M, V) at the M positions whose label != -100, in row-major (b, t) order;
    (B, T, V) when mlm_labels is None."""
    mlm_targets: torch.Tensor | None
    """(M,) the labels at those positions; None when mlm_labels is None."""
    pair_logits: torch.Tensor | None
    """(B, 2) the sentence pair head's logits; None for an mlm model (no pair head)."""


class PreTrainingModel(nn.Module):
    """Encoder + pooler + pair head + masked LM head, as BertForPreTraining/AlbertForPreTraining.

    ``unpad``: compute only the tokens an output needs when mlm_labels are given (see the
    module docstring); the outputs are those of the padded computation within float rounding.
    Off (the default) everything is computed at every position, as Hugging Face does.
    """

    def __init__(self, config: ModelConfig, unpad: bool = False):
        super().__init__()
        self.config = config
        self.unpad = unpad
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = self.pair_head = None  # objective "mlm": masked LM only
        if config.has_pair_head:
            self.pooler = nn.Linear(config.hidden_size, config.hidden_size)  # then tanh
            self.pair_head = nn.Linear(config.hidden_size, 2)
        self.mlm_head = MaskedLMHead(config)
        self.apply(_init_weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        mlm_labels: torch.Tensor | None = None,
        pair_labels: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        # input_ids, token_type_ids: (B, T) long; attention_mask: (B, T) bool, True = real
        # token (None = all real); mlm_labels: (B, T) long, -100 where not predicted;
        # pair_labels: (B,) long
        b, t = input_ids.shape
        if t > self.config.max_seq_len:
            raise ValueError(f"sequence length {t} > max_seq_len {self.config.max_seq_len}")
        if attention_mask is not None:
            attention_mask = attention_mask.to(torch.bool)
        layout = self._layout(attention_mask, mlm_labels, b, t)
        positions = None
        if layout.flat:  # (N,) each: the computed tokens only
            input_ids, token_type_ids, mlm_labels = (
                layout.gather(z) for z in (input_ids, token_type_ids, mlm_labels))
            positions = layout.gather(torch.arange(t, device=input_ids.device).expand(b, t))
        x = self.embeddings(input_ids, token_type_ids, positions)  # (B, T, H) or (N, H)
        x = self.encoder(x, layout)  # like x

        pair_logits = None
        if self.pair_head is not None:
            pooled = torch.tanh(self.pooler(layout.first_tokens(x)))  # (B, H): the [CLS] position
            pair_logits = self.pair_head(pooled)  # (B, 2)

        decoder_weight = self.embeddings.word.weight  # (V, E): tied, one parameter
        mlm_targets = mlm_loss = None
        if mlm_labels is None:
            mlm_logits = self.mlm_head(x, decoder_weight)  # (B, T, V)
        else:
            # Gather before the head: only ~15% of positions pay for the (E x V) decoder.
            predicted = mlm_labels != IGNORE_INDEX  # (B, T) or (N,)
            mlm_logits = self.mlm_head(x[predicted], decoder_weight)  # (M, V)
            mlm_targets = mlm_labels[predicted]  # (M,)
            if mlm_targets.numel():
                mlm_loss = F.cross_entropy(mlm_logits.float(), mlm_targets)
            else:  # mean over nothing is nan; keep the graph so backward still works
                mlm_loss = mlm_logits.float().sum() * 0.0

        pair_loss = None
        if pair_labels is not None and pair_logits is not None:
            pair_loss = F.cross_entropy(pair_logits.float(), pair_labels)

        if mlm_loss is not None and pair_loss is not None:
            loss = mlm_loss + pair_loss
        else:
            loss = mlm_loss if mlm_loss is not None else pair_loss
        return PreTrainingOutput(loss=loss, mlm_loss=mlm_loss, pair_loss=pair_loss,
                                 mlm_logits=mlm_logits, mlm_targets=mlm_targets,
                                 pair_logits=pair_logits)


    def _layout(self, attention_mask: torch.Tensor | None, mlm_labels: torch.Tensor | None,
                b: int, t: int) -> TokenLayout:
        """Unpadded when ``unpad`` and there are labels (without them every position has MLM
        logits, so every position is computed) and padding; else padded."""
        if not self.unpad or mlm_labels is None or attention_mask is None:
            return TokenLayout.padded(attention_mask, b, t)
        # the outputs read [CLS] (the pooler) and the predicted positions, real or not
        computed = attention_mask | (mlm_labels != IGNORE_INDEX)  # (B, T)
        computed[:, 0] = True
        return TokenLayout.unpadded(attention_mask, computed)


def _init_weights(module: nn.Module) -> None:
    """BERT's initialization: weights N(0, 0.02), biases 0, LayerNorm weight 1 and bias 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


__all__ = ["PRESETS", "ModelConfig", "PreTrainingModel", "PreTrainingOutput", "TokenLayout"]
