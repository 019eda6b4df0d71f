"""Pure text logic of winnow's curation stages.

Nothing here imports apache_beam, torch, ``pipeline`` or ``trainer``: every module holds plain
functions and small classes over ``str``, ``bytes`` and numpy, so the rules can be read, tested and
reused without a runner. A filter answers ``KEEP`` (``None``) or the name of the reason it drops
a document for, or a ``Drop`` holding that reason and its evidence; see ``filters.base``.
"""
