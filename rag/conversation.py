"""Follow-up questions: a question asked in a conversation, rewritten as the standalone
question it stands for before anything is retrieved.

"And for unverified ones?" retrieves nothing useful on its own; written out against the
conversation ("What is the daily send limit for unverified Everyone Pay accounts?") it is an
ordinary question, answered (or refused) exactly as if the user had typed it. A `Condenser`
does the rewriting, chosen from `CONDENSERS` by name: `rule` (word patterns over the previous
question, no model), `generator` (the answering model asked to write the standalone question,
as LlamaIndex's condense-question chat engine does), `concat` (the previous question and the
follow-up together, the cheapest context) and `none` (the follow-up as it is). The default,
`rule`, was chosen on eval/follow-ups.jsonl (docs/models.md, "Follow-up questions"): its
follow-ups are answered right and cited as often as the same questions written out, and the
shipped 135M generator writes no usable standalone question.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag import followup_rules
from rag.generate.backends import Generator, Sampling
from rag.generate.prompt import ABSTAIN, defang

USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    content: str


class Condenser(Protocol):
    name: str

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """`question` written out so that it can be understood without `history` (which holds
        at least one user turn)."""
        ...


def resolve(question: str, history: Sequence[Turn], condenser: Condenser) -> str:
    """The standalone question `question` stands for after `history`: `question` itself when
    the history holds no user turn, or when the condenser writes nothing."""
    if not any(turn.role == USER for turn in history):
        return question
    return condenser.condense(question, history).strip() or question


def user_questions(history: Sequence[Turn]) -> list[str]:
    return [turn.content.strip() for turn in history if turn.role == USER and turn.content.strip()]


class AsIs:
    """The follow-up as it is: conversations switched off (and the measurement's baseline)."""

    name = "none"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        return question


class Concat:
    """The previous question followed by the follow-up: retrieval sees both topics' words,
    at the cost of a question that asks two things."""

    name = "concat"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        previous = user_questions(history)
        return f"{previous[-1]} {question}" if previous else question


class RuleCondenser:
    """Word patterns, no model (rag.followup_rules). Earlier follow-ups in the history are
    resolved first, so a chain of them keeps its topic."""

    name = "rule"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        previous: str | None = None
        for asked in user_questions(history):
            previous = followup_rules.rewrite(asked, previous)
        return followup_rules.rewrite(question, previous)


# After LlamaIndex's condense-question prompt (CondenseQuestionChatEngine).
CONDENSE_PROMPT = (
    "Given a conversation (between Human and Assistant) and a follow up message from Human, rewrite the "
    "message to be a standalone question that captures all relevant context from the conversation. "
    "Reply with the question only.\n\n<Chat History>\n{history}\n\n<Follow Up Message>\n{question}\n\n"
    "<Standalone question>\n"
)
_LABEL = re.compile(r"^\s*(?:<?standalone question>?|question)\s*:?\s*", re.IGNORECASE)


class GeneratorCondenser:
    """The answering model asked to write the standalone question. The last `turns` turns are
    shown, each cut to `chars` characters (an answer's passages and citations add nothing to
    the question). A reply that is no question (not ending in "?", the refusal, an answer
    with citation markers; the shipped 135M model wrote no question to any of the 40 of
    eval/follow-ups.jsonl, mostly "I'm sorry for the confusion, ...") is replaced by `fallback`'s rewrite."""

    name = "generator"

    def __init__(self, generator: Generator, fallback: Condenser | None = None, turns: int = 6,
                 chars: int = 400) -> None:
        self.generator = generator
        self.fallback = fallback or RuleCondenser()
        self.turns = turns
        self.chars = chars

    def messages(self, question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
        lines = [f"{'Human' if t.role == USER else 'Assistant'}: {defang(t.content.strip()[:self.chars])}"
                 for t in history[-self.turns:]]
        return [{"role": "user", "content": CONDENSE_PROMPT.format(history="\n".join(lines),
                                                                   question=defang(question.strip()))}]

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        reply = "".join(self.generator.stream(self.messages(question, history), Sampling(max_new_tokens=64)))
        written = _LABEL.sub("", next((line for line in reply.splitlines() if line.strip()), "")).strip(" \"'")
        if not written.endswith("?") or ABSTAIN.lower() in written.lower() or re.search(r"\[\d+\]", written):
            return self.fallback.condense(question, history)
        return written


CONDENSERS: dict[str, Callable[[Generator | None], Condenser]] = {
    "rule": lambda generator: RuleCondenser(),
    "generator": lambda generator: GeneratorCondenser(_needed(generator)),
    "concat": lambda generator: Concat(),
    "none": lambda generator: AsIs(),
}
DEFAULT_CONDENSER = "rule"


def _needed(generator: Generator | None) -> Generator:
    if generator is None:
        raise ValueError("the generator condenser needs a generator (this pipeline answers with the reader alone)")
    return generator


def make(name: str = DEFAULT_CONDENSER, generator: Generator | None = None) -> Condenser:
    """The condenser `name` (one of CONDENSERS), writing with `generator` where it needs one."""
    if name not in CONDENSERS:
        raise ValueError(f"unknown condenser {name!r}; choose one of {', '.join(CONDENSERS)}")
    return CONDENSERS[name](generator)
