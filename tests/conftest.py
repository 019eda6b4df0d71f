import os

import pytest

from tests.gcs_emulator import emulator_missing, start_emulator, stop_emulator


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """A local Cloud Storage emulator (``tests.gcs_emulator``) with bucket ``winnow-test``, and
    ``os.environ`` pointing this process and its subprocesses at it for the rest of the session
    (the variables name only the emulator and a local token server: nothing leaves the machine).
    Skips when the emulator is not installed."""
    missing = emulator_missing()
    if missing:
        pytest.skip(f"the Cloud Storage emulator {missing}")
    emulator, tokens = start_emulator(tmp_path_factory.mktemp("gcs-credentials"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in emulator.env.items():
            patch.setenv(name, value)
        try:
            yield emulator
        finally:
            stop_emulator(emulator, tokens)
    assert all(os.environ.get(name) != value for name, value in emulator.env.items())
