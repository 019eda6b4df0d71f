"""The language-ID model named locally or by URL (filters.language, filters.model_files)."""

import io
import os
from pathlib import Path

import pytest

from winnow.filters.language import BUNDLED_LID_MODEL, LanguageConfig, LanguageIdentifier

GERMAN = "Der schnelle braune Fuchs springt über den faulen Hund und läuft dann nach Hause."


def test_a_remote_model_is_read_with_the_callers_opener_into_a_deleted_copy(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the temporary copy goes
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    model = Path(BUNDLED_LID_MODEL).read_bytes()
    opened = []

    def opener(path):
        opened.append(path)
        return io.BytesIO(model)

    remote = LanguageIdentifier("gs://bucket/lid.176.ftz", opener)
    assert opened == ["gs://bucket/lid.176.ftz"]
    assert remote.predict(GERMAN) == LanguageIdentifier().predict(GERMAN)
    assert remote.predict(GERMAN)[0] == "de"
    assert os.listdir(tmp_path) == []  # the copy is gone once loaded
    with pytest.raises(ValueError, match="language model 'gs://bucket/x.ftz'.*open_binary"):
        LanguageIdentifier("gs://bucket/x.ftz")


def test_the_config_checks_only_local_model_paths(tmp_path):
    assert LanguageConfig(model="gs://bucket/lid.176.ftz").errors() == []
    assert LanguageConfig(model=str(tmp_path / "none.ftz")).errors() == [
        f"model: no file at {str(tmp_path / 'none.ftz')!r}"]
    assert LanguageConfig(model="file://" + BUNDLED_LID_MODEL).errors() == []
