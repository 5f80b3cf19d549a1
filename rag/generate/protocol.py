"""What every generator backend is and takes: the `Generator` protocol, its `Sampling` settings,
the chat `Messages` it answers, and the `GeneratorError` it raises (rag.generate.backends holds
the registry; each backend module implements the protocol)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

Messages = list[dict[str, str]]


class GeneratorError(RuntimeError):
    """The generator could not produce an answer (server unreachable, timed out, failed)."""


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 160  # a short cited answer is 20 to 80 tokens
    temperature: float = 0.0  # 0: greedy
    # Decoding levers of the in-process model (rag.generate.decoding), off by default; a server ignores them.
    refusal_bias: float = 0.0  # lowers the refusal's first token's logit at the answer's start
    copy_only: bool = False  # every answer token one the prompt holds (or a marker, punctuation, the end)
    context_guidance: float = 1.0  # > 1: context-aware decoding against the question alone


class Generator(Protocol):
    name: str
    markers: bool  # prompted to cite with [n] markers itself (else plain sentences, cited after writing)

    @property
    def context_tokens(self) -> int: ...  # the model's window: prompt plus answer

    def count_tokens(self, messages: Messages) -> int:
        """Prompt length in the model's tokens, chat template included."""
        ...

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        """The answer, piece by piece."""
        ...
