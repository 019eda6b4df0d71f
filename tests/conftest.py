import pytest

from tests.gcs_emulator import emulator_missing, start_emulator, stop_emulator


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """A local Cloud Storage emulator (``tests.gcs_emulator``) with bucket ``winnow-test``, for
    the whole session; ``with gcs_server.environment():`` points clients at it (for fixtures
    wider than one test). Skips when the emulator is not installed."""
    missing = emulator_missing()
    if missing:
        pytest.skip(f"the Cloud Storage emulator {missing}")
    emulator, tokens = start_emulator(tmp_path_factory.mktemp("gcs-credentials"))
    try:
        yield emulator
    finally:
        stop_emulator(emulator, tokens)


@pytest.fixture()
def gcs(gcs_server):
    """The emulator, with ``os.environ`` pointing this process and its subprocesses at it for
    the test (the variables name only the emulator and a local token server: nothing leaves the
    machine)."""
    with gcs_server.environment():
        yield gcs_server
