"""llama.cpp in this process (`llama-cpp-python`, the extra `[llamacpp]`): the generator's GGUF
read as it is, still quantized, so loading takes a second and no converted copy is kept.

Backend "llamacpp" in rag.generate.backends. llama-cpp-python ships no wheel for most
machines: pip compiles llama.cpp (about 5 minutes on two cores), which is why the default
backend stays transformers (benchmarks/generator_runtime.py measures both side by side).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from rag import models
from rag.generate import weights
from rag.generate.protocol import GeneratorError, Messages, Sampling

INSTALL = ('CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install "rag[llamacpp]" (compiles llama.cpp: about '
           '4 minutes on two cores; the native build of 0.3.36 crashed at the first token on AMX cores)')


def gguf_path(name: str) -> Path:
    """The GGUF file of `name`: a packaged generator's, or a .gguf file."""
    if name in weights.PACKAGED_GGUF:
        return weights.gguf_file(name)
    path = Path(name).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise models.ModelNotFoundError(f"llama.cpp reads GGUF files: {name!r} is neither a packaged generator "
                                        f"({', '.join(weights.PACKAGED_GGUF)}) nor an existing .gguf file")
    return path


class LlamaCppGenerator:
    """A GGUF model run by llama.cpp on the CPU threads given (None: llama.cpp's choice). One
    question at a time: a llama.cpp context is not shared between threads."""

    def __init__(self, name: str = weights.DEFAULT_GENERATOR, context_tokens: int | None = None,
                 threads: int | None = None) -> None:
        self.name = name
        self.markers = weights.writes_markers(name)
        self.path = gguf_path(name)
        self.context_tokens = context_tokens or 4096  # a prompt of 5 passages is about 1,000 tokens
        self.threads = threads
        self._lock = threading.Lock()

    @cached_property
    def llm(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise GeneratorError(f"backend llamacpp needs llama-cpp-python: {INSTALL}") from exc
        return Llama(model_path=str(self.path), n_ctx=self.context_tokens, n_threads=self.threads, verbose=False)

    @cached_property
    def _template(self) -> Any:
        """The chat template the GGUF carries, as llama.cpp's own chat handler applies it."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self.llm.metadata
        vocab = self.llm._model
        eos, bos = vocab.token_get_text(self.llm.token_eos()), vocab.token_get_text(self.llm.token_bos())
        return Jinja2ChatFormatter(meta["tokenizer.chat_template"], eos_token=eos, bos_token=bos,
                                   add_generation_prompt=True)

    def count_tokens(self, messages: Messages) -> int:
        text = self._template(messages=messages).prompt
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        with self._lock:
            chunks = self.llm.create_chat_completion(messages=messages, stream=True, max_tokens=sampling.max_new_tokens,
                                                     temperature=sampling.temperature,
                                                     top_k=0 if sampling.temperature > 0 else 1)
            try:
                for chunk in chunks:
                    if piece := chunk["choices"][0]["delta"].get("content"):
                        yield piece
            finally:  # a consumer that stops reading ends generation here
                chunks.close()
