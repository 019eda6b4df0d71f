"""Fine-tuning engines: Hugging Face ``BertForSequenceClassification`` (what ``winnow
finetune`` runs, on the exported model) against the trainer's own encoder with a pooler and a
linear head (the alternative it was measured against), training steps per second.

    python bench/finetune.py [--presets tiny small] [--batch-size 16] [--seq-len 128]
                             [--steps 5] [--threads 2]

Both models have the preset's shape, vocabulary 8,000 and random weights; each step is a
forward pass on one fixed batch of random ids (all positions real), cross-entropy on two
classes, backward and an AdamW step, in fp32 on the CPU (bf16 autocast on CUDA when there is
one). One warm-up step, then ``--steps`` timed steps.
"""

from __future__ import annotations

import argparse
import time

import torch

from winnow.trainer.model import ModelConfig, PreTrainingModel, TokenLayout

VOCAB = 8000


def huggingface_step(config: ModelConfig, batch: dict[str, torch.Tensor]):
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_seq_len, num_labels=2)).to(batch["labels"].device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)

    def step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def own_model_step(config: ModelConfig, batch: dict[str, torch.Tensor]):
    device = batch["labels"].device
    model = PreTrainingModel(config).to(device)
    head = torch.nn.Linear(config.hidden_size, 2).to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=5e-5)
    b, t = batch["input_ids"].shape
    layout = TokenLayout.padded(batch["attention_mask"].bool(), b, t)

    def step() -> None:
        hidden = model.encoder(model.embeddings(batch["input_ids"], batch["token_type_ids"]),
                               layout)  # (B, T, H)
        logits = head(torch.tanh(model.pooler(hidden[:, 0])))  # (B, 2)
        torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def steps_per_second(step, steps: int, device: torch.device) -> float:
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (args.batch_size, args.seq_len), generator=generator)
    batch = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids),
             "attention_mask": torch.ones_like(ids),
             "labels": torch.randint(0, 2, (args.batch_size,), generator=generator)}
    batch = {name: tensor.to(device) for name, tensor in batch.items()}
    print(f"{device.type}, batch {args.batch_size} x {args.seq_len}, {args.threads} threads")
    for preset in args.presets:
        config = ModelConfig.preset(preset, vocab_size=VOCAB, max_seq_len=args.seq_len)
        for name, build in (("transformers", huggingface_step), ("own model", own_model_step)):
            torch.manual_seed(0)
            rate = steps_per_second(build(config, batch), args.steps, device)
            print(f"{preset:6} {name:13} {rate:7.2f} steps/s "
                  f"{rate * args.batch_size * args.seq_len:9.0f} tokens/s")


if __name__ == "__main__":
    main()
