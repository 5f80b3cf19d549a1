"""Generator backends behind one protocol, chosen by name from `BACKENDS`: "transformers", a
model in this process; "llamacpp", a GGUF run by llama.cpp in this process (rag.generate.llamacpp);
or "openai", any server speaking the OpenAI-compatible chat API (vLLM, TGI, llama.cpp server, ...).
A `GeneratorSpec` names the backend and its settings.

Both stream text pieces as they are produced and decode greedily by default, so the same
question over the same passages gives the same answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from rag import models
from rag.generate import decoding, weights
from rag.generate.llamacpp import LlamaCppGenerator
from rag.generate.protocol import Generator, GeneratorError, Messages, Sampling

SHIPPED = "shipped"  # GeneratorSpec(adapter=SHIPPED): the project's fine-tuned adapter for the model, when it has one


def cpu_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16, as /proc/cpuinfo says): there
    a 0.5B model's prompt is read 3x faster in bfloat16 than in float32 (benchmarks/generator_runtime.py);
    elsewhere bfloat16 is emulated and slower, so float32 stays."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class TransformersGenerator:
    """A causal LM in this process: bfloat16 on CUDA, and on a CPU that computes it natively
    (`cpu_bfloat16`), else float32.
    Loaded once, on first use. A LoRA adapter, when given, is merged into the weights at load,
    so it costs nothing per token."""

    def __init__(self, name: str = weights.DEFAULT_GENERATOR, device: str | None = None,
                 context_tokens: int | None = None, adapter: Path | None = None) -> None:
        if adapter is not None:
            check_adapter(adapter, name)
        self.name = f"{name}+{adapter.name}" if adapter else name
        self.base = name
        self.markers = weights.writes_markers(name)
        self.adapter = adapter
        self._device = device
        self._context_tokens = context_tokens

    @cached_property
    def path(self) -> Path:
        """The model folder, converted from GGUF on first use (about a minute, once per machine)."""
        return weights.resolve(self.base)

    @cached_property
    def device(self) -> str:
        import torch

        return self._device or ("cuda" if torch.cuda.is_available() else "cpu")

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.path))

    @cached_property
    def model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        dtype = torch.bfloat16 if self.device.startswith("cuda") or cpu_bfloat16() else torch.float32
        with models.quiet_loading():
            model: Any = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=dtype)
            if self.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.adapter)).merge_and_unload()
        return model.to(self.device).eval()

    @cached_property
    def context_tokens(self) -> int:
        """Read once from the model's config (every question needs it for its prompt budget)."""
        if self._context_tokens:
            return self._context_tokens
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(str(self.path)).max_position_embeddings)

    def count_tokens(self, messages: Messages) -> int:
        return len(self._encode(messages)["input_ids"][0])

    def _encode(self, messages: Messages) -> Any:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._encode(messages).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "streamer": streamer,
                                   "pad_token_id": self.tokenizer.eos_token_id}
        options |= ({"do_sample": True, "temperature": sampling.temperature} if sampling.temperature > 0
                    else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
        options |= decoding.options(self.tokenizer, inputs, messages, sampling.refusal_bias, sampling.copy_only,
                                    sampling.context_guidance)
        failure: list[BaseException] = []
        stop = threading.Event()
        options["stopping_criteria"] = _stopped_by(stop)

        def run() -> None:
            try:
                self.model.generate(**inputs, **options)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="rag-generate", daemon=True)
        worker.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:  # a consumer that stops reading (a caller gone, Ctrl-C) ends generation at its next token
            stop.set()
            worker.join()
        if failure:
            raise GeneratorError(f"generation failed: {failure[0]}") from failure[0]

    def option_probabilities(self, messages: Messages, options: Sequence[str]) -> list[float]:
        """How likely the answer starts with each option (first token of each, renormalised over
        the options): the model used as a classifier, such as a yes/no judge."""
        import torch

        firsts = [self.tokenizer.encode(option, add_special_tokens=False)[0] for option in options]
        with torch.inference_mode():
            logits = self.model(**self._encode(messages).to(self.device)).logits[0, -1].float()
        return [float(p) for p in torch.softmax(logits[firsts], dim=0)]


def _stopped_by(stop: threading.Event) -> Any:
    """transformers' stopping criteria that end `generate` once `stop` is set (checked after each token)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stopped(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Stopped()])


def check_adapter(adapter: Path, base: str) -> None:
    """A clear error, before any loading, when `adapter` is no adapter or was trained for another base."""
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise models.ModelNotFoundError(f"adapter {adapter} has no adapter_config.json (write one with rag finetune)")
    trained_for = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if trained_for and models.canonical_name(trained_for) != models.canonical_name(base):
        raise ValueError(f"adapter {adapter} was trained for base model {trained_for!r}, not {base!r}: "
                         f"pass --generator {trained_for} (or train an adapter for {base})")


class OpenAIChatGenerator:
    """A model served over the OpenAI-compatible chat API, streamed over server-sent events.

    The server's tokenizer is not at hand, so prompt length is estimated at one token per
    three characters (English runs near four), which errs on the side of dropping a passage
    rather than overflowing the server's window."""

    CHARS_PER_TOKEN = 3

    def __init__(self, base_url: str, model: str, api_key: str | None = None, context_tokens: int = 4096,
                 timeout: float = 60.0, retries: int = 3) -> None:
        self.name = model
        self.markers = False  # any model: plain sentences, cited after writing
        self.base_url = base_url
        self.context_tokens = context_tokens
        self.api_key = api_key or "not-needed"  # local servers take any key
        self.timeout = timeout
        self.retries = retries

    @cached_property
    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.retries)

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"]) // self.CHARS_PER_TOKEN + 4 for m in messages)

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        import openai

        try:
            chunks = self.client.chat.completions.create(
                model=self.name, messages=messages, stream=True, max_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature)
            for chunk in chunks:
                if chunk.choices and (piece := chunk.choices[0].delta.content):
                    yield piece
        except openai.APITimeoutError as exc:  # after the client's retries, like the errors below
            raise GeneratorError(f"the generation server at {self.base_url} did not answer within "
                                 f"{self.timeout:g} s (tried {self.retries + 1} times)") from exc
        except openai.APIConnectionError as exc:
            raise GeneratorError(f"cannot reach the generation server at {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise GeneratorError(f"the generation server at {self.base_url} answered {exc.status_code}: "
                                 f"{exc.message}") from exc


@dataclass(frozen=True)
class GeneratorSpec:
    """Which generator to make: `backend` names one of BACKENDS, `model` the model (for "openai",
    the server's name for it). Frozen, so a service can key its loaded generators by it."""

    backend: str = "transformers"
    model: str = weights.DEFAULT_GENERATOR
    server: str | None = None  # "openai": the base URL, such as http://gpu:8000/v1
    api_key: str | None = None  # "openai": the server's key (local servers take any)
    # "transformers": a folder written by `rag finetune`, SHIPPED for the project's own adapter for
    # `model` (none if it has none), or None for the bare model; a server applies any adapter itself.
    adapter: str | Path | None = SHIPPED
    context_tokens: int | None = None  # the model's window (None: the model's config, or 4096 for a server)

    @classmethod
    def of(cls, model: str = weights.DEFAULT_GENERATOR, server: str | None = None, api_key: str | None = None,
           context_tokens: int | None = None, adapter: str | Path | None = SHIPPED,
           backend: str | None = None) -> GeneratorSpec:
        """As `rag ask --backend B --server URL`, $RAG_BACKEND, $RAG_SERVER and the web UI's server
        field mean it: the backend named, else "openai" with a server URL and "transformers" without."""
        return cls(backend or ("openai" if server else "transformers"), model, server or None, api_key, adapter,
                   context_tokens)


def _transformers(spec: GeneratorSpec) -> Generator:
    adapter = spec.adapter
    folder = weights.shipped_adapter(spec.model) if adapter == SHIPPED else Path(adapter) if adapter else None
    return TransformersGenerator(spec.model, context_tokens=spec.context_tokens, adapter=folder)


def _openai(spec: GeneratorSpec) -> Generator:
    if not spec.server:
        raise ValueError('generator backend "openai" needs a server URL (--server or $RAG_SERVER)')
    window = {"context_tokens": spec.context_tokens} if spec.context_tokens else {}
    return OpenAIChatGenerator(spec.server, spec.model, spec.api_key, **window)


def _llamacpp(spec: GeneratorSpec) -> Generator:
    return LlamaCppGenerator(spec.model, spec.context_tokens)


BACKENDS: dict[str, Callable[[GeneratorSpec], Generator]] = {"transformers": _transformers, "llamacpp": _llamacpp,
                                                             "openai": _openai}


def create(spec: GeneratorSpec) -> Generator:
    """The generator `spec` describes, from the backend it names."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"unknown generator backend {spec.backend!r}: known backends are "
                         f"{', '.join(sorted(BACKENDS))}")
    return BACKENDS[spec.backend](spec)


def make(name: str = weights.DEFAULT_GENERATOR, server: str | None = None, api_key: str | None = None,
         context_tokens: int | None = None, adapter: str | Path | None = SHIPPED,
         backend: str | None = None) -> Generator:
    """`create(GeneratorSpec.of(...))`: the model `name` in this process (by `backend`, default
    transformers), or, with `server`, the model of that name on an OpenAI-compatible server."""
    return create(GeneratorSpec.of(name, server, api_key, context_tokens, adapter, backend))
