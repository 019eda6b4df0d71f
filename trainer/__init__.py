"""Pretraining BERT/ALBERT encoders on winnow's token shards (torch, the ``train`` extra).

``model.py`` (the encoder and its MLM and SOP/NSP heads), ``data.py`` (memmap reading, dynamic
masking, index-deterministic order), ``train.py`` (config, loop, checkpoints, DDP, metrics),
``export.py`` (Hugging Face folders) and ``cli.py`` (``winnow pretrain`` and ``winnow export``).
Shards are read through ``schemas.shard_reader``; nothing here imports Beam.
"""
