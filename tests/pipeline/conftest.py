import pytest

from tests.pipeline.report_runs import curated_run


@pytest.fixture(scope="session")
def pii_on(tmp_path_factory):
    """The sample and the planted documents, default config (PII redacted)."""
    return curated_run(tmp_path_factory.mktemp("report-pii-on"), "pii_on")


@pytest.fixture(scope="session")
def pii_off(tmp_path_factory):
    """The same with the pii stage off, another heuristics threshold and no shards."""
    return curated_run(tmp_path_factory.mktemp("report-pii-off"), "pii_off")
