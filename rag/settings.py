"""Every RAG_* environment variable, read in one place, so that the CLI, the web UI and the
model cache agree on them. A value that is not set is None: whoever uses it applies its own
default (the CLI shows it in --help).

| variable | what it sets |
| --- | --- |
| RAG_INDEX | the index folder (default indexes/default) |
| RAG_CORPUS | the folder the web UI uploads into and rebuilds from (default corpus) |
| RAG_GENERATOR | the generator: packaged name, .gguf file, folder or hub id; with RAG_SERVER, the server's model |
| RAG_BACKEND | how the generator runs: transformers, llamacpp or openai (default: openai with RAG_SERVER) |
| RAG_ADAPTER | a LoRA adapter folder for the generator (default: the project's own; `none`: the bare model) |
| RAG_SERVER | base URL of an OpenAI-compatible server (vLLM, TGI, ...) that runs the generator |
| RAG_API_KEY | that server's key |
| RAG_READER | a reader folder from `rag train reader` (default: the shipped one) |
| RAG_STRICT | any value but 0: drop unsupported sentences, abstain if none is left |
| RAG_CONDENSER | how follow-ups in a conversation are rewritten: rule, generator, concat or none (rag.conversation) |
| RAG_CACHE | where converted model weights are kept (default ~/.cache/rag) |
| RAG_UI_SERVICE | module:factory of the web UI's service (tests put a fake behind the real pages) |
| RAG_KEYS | the API key store of `rag serve` and `rag keys` (default .rag/keys.sqlite) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    index: str | None = None
    corpus: str | None = None
    generator: str | None = None
    backend: str | None = None
    adapter: str | None = None
    server: str | None = None
    api_key: str | None = None
    reader: str | None = None
    strict: bool = False
    condenser: str | None = None
    cache: str | None = None
    ui_service: str | None = None
    keys: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (default: this process's environment); empty means not set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {f.name: env.get(f"RAG_{f.name.upper()}") or None for f in fields(cls)}
        values["strict"] = values["strict"] not in (None, "0")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def generator_adapter(self) -> str | None:
        """RAG_ADAPTER as rag.generate.backends.make takes it: "shipped" when unset, None for "none"."""
        return None if self.adapter == "none" else self.adapter or "shipped"
