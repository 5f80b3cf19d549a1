"""Model resolution: packaged, local folder, hub id (offline here), and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import models


def test_packaged_default_resolves_to_a_folder_with_weights() -> None:
    folder = models.resolve("all-MiniLM-L6-v2")
    assert (folder / "config.json").is_file()
    assert models.resolve("sentence-transformers/all-MiniLM-L6-v2") == folder


def test_local_folder_is_used_as_is(tmp_path: Path) -> None:
    assert models.resolve(str(tmp_path)) == tmp_path.resolve()


def test_local_file_is_not_a_model(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(models.ModelNotFoundError, match="not a folder"):
        models.resolve(str(file))


def test_hub_id_offline_names_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(models.ModelNotFoundError, match=r"'someone/no-such-model'.*HF_HUB_OFFLINE"):
        models.resolve("someone/no-such-model")


def test_unknown_bare_name_lists_packaged_models() -> None:
    with pytest.raises(models.ModelNotFoundError, match="all-MiniLM-L6-v2"):
        models.resolve("no-such-model")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.PACKAGED, "ghost", models.PackagedModel("no_such_package_xyz", "model"))
    with pytest.raises(models.ModelNotFoundError, match="no_such_package_xyz.*not installed"):
        models.resolve("ghost")
