"""Pretraining BERT/ALBERT encoders on winnow's token shards (torch, the ``train`` extra).

``model.py`` (the encoder and its MLM and SOP/NSP heads), ``data.py`` (memmap reading, dynamic
masking, index-deterministic order), ``config.py`` (TrainConfig), ``train.py`` (setup, the
loop, DDP), ``checkpoints.py`` (checkpoint files, RNG states), ``metrics.py`` (per-step sums,
metrics.jsonl, TensorBoard), ``export.py`` (Hugging Face folders) and ``cli.py``
(``winnow pretrain`` and ``winnow export``).
Shards are read through ``schemas.shard_reader``; nothing here imports Beam.
"""
