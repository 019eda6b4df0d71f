import pytest

pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import train_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory) -> bytes:
    """The tiny SentencePiece model every trainer test module builds its shards with."""
    return train_tokenizer(tmp_path_factory.mktemp("spm"))
