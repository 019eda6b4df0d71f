"""Loaded at start-up by every Python process of a test run that puts this folder on
PYTHONPATH, Beam's worker processes included (they inherit the environment): the normalize
stage then logs one real warning as each worker sets it up, which ``winnow curate`` must show."""

import logging

from winnow.pipeline import stages

PLANTED_WARNING = "planted warning from the normalize stage"

_setup = stages.NormalizeStage.setup


def _setup_with_a_warning(self):
    logging.getLogger("winnow.planted").warning(PLANTED_WARNING)
    _setup(self)


stages.NormalizeStage.setup = _setup_with_a_warning
