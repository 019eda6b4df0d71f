"""Pretraining on curated shards (torch). Arrives with the shard format; see the README."""
