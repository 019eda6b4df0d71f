"""Formats shared by curation (``pipeline/``) and training (``trainer/``).

``records``: the elements that flow through the Beam pipeline and the Parquet schemas they are
written with. ``config``: the typed YAML configuration. ``report``: the layout of ``report.json``.
Nothing here imports apache_beam or torch.
"""
