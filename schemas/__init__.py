"""Formats shared by curation (``pipeline/``) and training (``trainer/``).

``records``: the elements that flow through the Beam pipeline and the Parquet schemas they are
written with. ``fields``: the types of the input-fields column. ``typed_config``: loading typed
YAML configs. ``report``: the layout of ``report.json``. ``shard_format``, ``shard_reader``,
``shard_verify``: the token shards. ``compressed``: compressed input files.
Nothing here imports apache_beam or torch.
"""
