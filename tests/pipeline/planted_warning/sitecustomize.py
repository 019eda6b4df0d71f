"""Loaded at start-up by every Python process of a test run that puts this folder on
PYTHONPATH, Beam's worker processes included (they inherit the environment): with
``PLANTED_WARNING_ENV`` set, the normalize stage logs that text as a warning as each worker sets
it up, a real warning that ``winnow curate`` must show."""

import logging
import os

PLANTED_WARNING_ENV = "WINNOW_TEST_PLANTED_WARNING"

if os.environ.get(PLANTED_WARNING_ENV):
    from winnow.pipeline import stages

    _setup = stages.NormalizeStage.setup

    def _setup_with_a_warning(self):
        logging.getLogger("winnow.planted").warning(os.environ[PLANTED_WARNING_ENV])
        _setup(self)

    stages.NormalizeStage.setup = _setup_with_a_warning
