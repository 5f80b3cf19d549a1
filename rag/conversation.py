"""Follow-up questions: a question asked in a conversation, rewritten as the standalone
question it stands for before anything is retrieved.

"And for unverified ones?" retrieves nothing useful on its own; written out against the
conversation ("What is the daily send limit for unverified Everyone Pay accounts?") it is an
ordinary question, answered (or refused) exactly as if the user had typed it. A `Condenser`
does the rewriting, chosen from `CONDENSERS` by name: `rule` (word patterns over the previous
question, no model), `generator` (the answering model asked to write the standalone question,
as LlamaIndex's condense-question chat engine does), `concat` (the previous question and the
follow-up together, the cheapest context) and `none` (the follow-up as it is). The default
is measured on eval/follow-ups.jsonl (docs/models.md, "Follow-up questions").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

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


# Words that start an elliptical follow-up ("And for unverified ones?", "What about Bash?").
_LEAD = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+|^(?:and|also|same|but)\s+(?:for\s+(?=the\b))?",
                   re.IGNORECASE)
_QUESTION_WORD = re.compile(r"^(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|"
                            r"can|could|should|would|will|may|must|has|have)\b", re.IGNORECASE)
_PREPOSITIONS = ("for", "in", "on", "with", "at", "to", "from", "of", "by", "during", "after", "before",
                 "under", "over", "into", "inside", "between", "without")
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this|that|these|those)\b(?=\s*(?:\?|$|\s(?:is|are|was|were|"
                      r"do|does|did|mean|means|return|returns|cost|costs|take|takes|work|works|have|has|"
                      r"happen|happens|apply|applies)\b))|\b(it|its|they|them|their)\b", re.IGNORECASE)
# The topic of a question: "What is T", "How do I <verb> T", "What does T <verb>".
_TOPICS = (re.compile(r"^(?:what|which|who)\s+(?:is|are|was|were)\s+(?P<t>.+)$", re.IGNORECASE),
           re.compile(r"^.*?\b(?:I|you|we|one)\s+\w+\s+(?P<t>.+)$", re.IGNORECASE),
           re.compile(r"^(?:what|how|why|when|where)\s+(?:does|do|did|can|will|would|should)\s+(?P<t>.+?)\s+\w+$",
                      re.IGNORECASE))


def _bare(question: str) -> str:
    return question.strip().rstrip("?.! ").strip()


def _topic(question: str) -> str | None:
    for pattern in _TOPICS:
        if match := pattern.match(_bare(question)):
            return match.group("t")
    return None


def _last_preposition(words: list[str], wanted: str | None = None) -> int | None:
    """The index of the last preposition in `words` (the last `wanted`, when given) that has an object."""
    found = [n for n, w in enumerate(words[:-1]) if w.lower() == wanted or (wanted is None and w.lower() in
                                                                             _PREPOSITIONS)]
    return found[-1] if found else None


_DETERMINERS = ("the", "a", "an", "my", "your", "our", "its", "their", "this", "that")


def _stem(word: str) -> str:
    return word.lower().strip("`'\",()").removesuffix("s")


def _same_head(words: list[str], fragment: str) -> tuple[int, int] | None:
    """The span of `words` ending in the fragment's last word ("the monthly limit" matches "the
    daily send limit"): from the nearest determiner before it, or as many words as the fragment."""
    head = _stem(fragment.split()[-1])
    ends = [n for n, w in enumerate(words) if _stem(w) == head]
    if not ends:
        return None
    end = ends[-1]
    bounds = [n for n in range(end, -1, -1) if words[n].lower() in (*_DETERMINERS, *_PREPOSITIONS)]
    if not bounds:
        return max(0, end - len(fragment.split()) + 1), end + 1
    return bounds[0] + (words[bounds[0]].lower() in _PREPOSITIONS), end + 1


def _fill_ones(fragment: str, replaced: str) -> str:
    """"unverified ones" replacing "verified Everyone Pay accounts" -> "unverified Everyone Pay
    accounts": `one(s)` stands for the replaced phrase less its first word (its modifier)."""
    words = replaced.split()
    head = " ".join(words[1:]) if len(words) > 1 else replaced
    return re.sub(r"\bones?\b", head, fragment, flags=re.IGNORECASE)


class RuleCondenser:
    """Word patterns, no model. An elliptical follow-up ("And for X?", "What about X?") takes
    the place of the matching phrase of the previous question; a pronoun ("How do I close
    it?") is replaced by the previous question's topic; any other short follow-up is joined to
    the previous question; anything else is already standalone. Earlier follow-ups in the
    history are resolved first, so a chain of them keeps its topic."""

    name = "rule"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        previous: str | None = None
        for asked in user_questions(history):
            previous = self.rewrite(asked, previous)
        return self.rewrite(question, previous)

    def rewrite(self, question: str, previous: str | None) -> str:
        if previous is None:
            return question
        lead = _LEAD.match(question.strip())
        rest = question.strip()[lead.end():] if lead else question.strip()
        if lead and rest and not _QUESTION_WORD.match(rest):
            return self.substitute(_bare(rest), previous)
        if _PRONOUN.search(rest) and (topic := _topic(previous)):
            return _PRONOUN.sub(lambda m: topic + ("'s" if m.group().lower() in ("its", "their") else ""), rest, 1)
        if len(_bare(rest).split()) <= 2:
            return f"{previous} {question.strip()}"
        return rest if lead else question

    def substitute(self, fragment: str, previous: str) -> str:
        """`previous` with `fragment` in place of its matching phrase."""
        words = _bare(previous).split()
        first = fragment.split()[0].lower()
        at = _last_preposition(words, first) if first in _PREPOSITIONS else None
        if at is not None:
            return " ".join([*words[:at], _fill_ones(fragment, " ".join(words[at + 1:]))]) + "?"
        if (span := _same_head(words, fragment)) is not None:
            return " ".join([*words[:span[0]], fragment, *words[span[1]:]]) + "?"
        at = _last_preposition(words)
        if at is not None and first not in _PREPOSITIONS:
            return " ".join([*words[:at + 1], _fill_ones(fragment, " ".join(words[at + 1:]))]) + "?"
        topic = _topic(previous)
        if topic and first not in _PREPOSITIONS:
            return _bare(previous).replace(topic, _fill_ones(fragment, topic), 1) + "?"
        return f"{_bare(previous)} {fragment}?"


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
    the question). A reply that is no question (empty, the refusal, an answer with citation
    markers) is replaced by `fallback`'s rewrite."""

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
        if not written or ABSTAIN.lower() in written.lower() or re.search(r"\[\d+\]", written):
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
