"""Beam wiring of winnow's curation: readers, one generic stage transform, dedup groupings,
writers and the report. The text logic itself lives in ``filters/``."""
