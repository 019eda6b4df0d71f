"""Loaded at start-up by every Python process of a test run that puts this folder on
PYTHONPATH, Beam's worker processes included (they inherit the environment): with
``PLANTED_WARNING_ENV`` set, the normalize stage logs that text as a warning as each worker sets
it up, a real warning that ``winnow curate`` must show. With ``NO_APITOOLS_ENV`` set, apitools
cannot be imported."""

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

NO_APITOOLS_ENV = "WINNOW_TEST_NO_APITOOLS"

if os.environ.get(NO_APITOOLS_ENV):
    # As in an install without the gcp extra: apitools cannot be imported, so importing Beam
    # logs "apitools not found, and bigquery client libraries are not available ...".
    import sys
    from importlib.abc import MetaPathFinder

    class _NoApitools(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "apitools" or name.startswith("apitools."):
                raise ImportError(f"no module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, _NoApitools())
