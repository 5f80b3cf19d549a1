"""Follow-ups rewritten as standalone questions (rag.conversation), and the pipeline answering
the rewritten question, with a scripted generator and the fake reader of test_pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from rag import Index
from rag.answer import AnswerConfig, Answerer
from rag.conversation import (
    ASSISTANT,
    CONDENSERS,
    USER,
    Concat,
    GeneratorCondenser,
    RuleCondenser,
    Turn,
    make,
    resolve,
)
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from tests.conftest import FakeEmbedder, Scripted
from tests.test_pipeline import POLICY, FakeReader
from tests.test_verify import KeywordVerifier

LIMIT = "What is the daily send limit for verified Everyone Pay accounts?"


def history(*questions: str) -> list[Turn]:
    """User turns, each followed by an assistant's answer."""
    return [turn for q in questions for turn in (Turn(USER, q), Turn(ASSISTANT, "An answer [1]."))]


@pytest.mark.parametrize(("previous", "follow_up", "standalone"), [
    (LIMIT, "And for unverified ones?", "What is the daily send limit for unverified Everyone Pay accounts?"),
    ("What is the interest rate on checking accounts?", "What about savings accounts?",
     "What is the interest rate on savings accounts?"),
    ("What does the break statement do?", "And the continue statement?", "What does the continue statement do?"),
    ("How do I open a savings account?", "What is the interest rate on it?",
     "What is the interest rate on a savings account?"),
    ("What does the range function return?", "Can it take a step?", "Can the range function take a step?"),
    ("What is a tuple?", "Why?", "What is a tuple? Why?"),
    ("What is a tuple?", "Can lists be nested?", "Can lists be nested?"),  # already standalone
])
def test_the_rule_condenser_writes_the_follow_up_out(previous: str, follow_up: str, standalone: str) -> None:
    assert RuleCondenser().condense(follow_up, history(previous)) == standalone


def test_a_chain_of_follow_ups_keeps_its_topic() -> None:
    chain = history(LIMIT, "And for unverified ones?")
    assert RuleCondenser().condense("What about the monthly limit?", chain) == \
        "What is the monthly limit for unverified Everyone Pay accounts?"


def test_without_a_user_turn_the_question_is_its_own() -> None:
    for name in CONDENSERS:
        condenser = make(name, Scripted("Something else?"))
        assert resolve("And for unverified ones?", [], condenser) == "And for unverified ones?"
        assert resolve("Why?", [Turn(ASSISTANT, "Hello.")], condenser) == "Why?"
    assert Concat().condense("Why?", history(LIMIT)) == f"{LIMIT} Why?"


def test_the_generator_condenser_shows_the_conversation_and_takes_its_question() -> None:
    generator = Scripted("Standalone question: What is the daily send limit for unverified accounts?\nMore.")
    condenser = GeneratorCondenser(generator)
    past = [Turn(USER, LIMIT), Turn(ASSISTANT, "$3,500 per day [1]. <<<ignore>>>")]
    assert condenser.condense("And for unverified ones?", past) == \
        "What is the daily send limit for unverified accounts?"
    shown = generator.prompts[0][0]["content"]
    assert f"Human: {LIMIT}" in shown and "Assistant: $3,500 per day (1). «ignore»" in shown  # defanged
    assert shown.rstrip().endswith("And for unverified ones?\n\n<Standalone question>")


@pytest.mark.parametrize("reply", ["", ABSTAIN, "It is $500 per day [2]."])
def test_a_reply_that_is_no_question_gives_way_to_the_fallback(reply: str) -> None:
    condenser = GeneratorCondenser(Scripted(reply))
    assert condenser.condense("And for unverified ones?", history(LIMIT)) == \
        "What is the daily send limit for unverified Everyone Pay accounts?"


def test_an_unknown_condenser_or_a_missing_generator_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown condenser 'llm'; choose one of rule, generator"):
        make("llm")
    with pytest.raises(ValueError, match="needs a generator"):
        make("generator", None)


class Recording:
    """Rewrites every follow-up to `standalone` and records what it was given."""

    name = "recording"

    def __init__(self, standalone: str) -> None:
        self.standalone = standalone
        self.seen: list[tuple[str, list[Turn]]] = []

    def condense(self, question: str, past: Sequence[Turn]) -> str:
        self.seen.append((question, list(past)))
        return self.standalone


@pytest.fixture
def index(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> Index:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    return index


def pipeline(index: Index, condenser: Recording, margin: float = 5.0) -> Pipeline:
    answerer = Answerer(index, Scripted("Whale oil was replaced by colza oil in 1846 [1]."), AnswerConfig(k=4),
                        FakeReader("1846", margin))
    return Pipeline(answerer, KeywordVerifier(), POLICY, condenser=condenser)


def test_the_pipeline_answers_the_standalone_question_and_keeps_the_users_words(index: Index) -> None:
    standalone = "When was whale oil replaced by colza oil?"
    condenser = Recording(standalone)
    answers = pipeline(index, condenser)
    past = history("Who replaced whale oil?")
    answer = answers.ask("And when?", past)
    assert condenser.seen == [("And when?", past)]
    assert answer.question == standalone and answer.asked == "And when?" and not answer.abstained
    prompt = answers.answerer.generator.prompts[0][1]["content"]  # type: ignore[union-attr]
    assert standalone in prompt and "And when?" not in prompt


def test_without_history_nothing_is_rewritten(index: Index) -> None:
    condenser = Recording("Something else entirely?")
    answer = pipeline(index, condenser).ask("When was whale oil replaced by colza oil?")
    assert condenser.seen == [] and answer.asked is None
    assert answer.question == "When was whale oil replaced by colza oil?"
    unchanged = Recording("When was whale oil replaced by colza oil?")  # a follow-up already standalone
    assert pipeline(index, unchanged).ask(unchanged.standalone, history("Hi?")).asked is None


def test_a_follow_up_the_passages_do_not_answer_is_refused(index: Index) -> None:
    answer = pipeline(index, Recording("What colour was the whale?"), margin=-3.0).ask("And its colour?",
                                                                                        history("Whale oil?"))
    assert answer.abstained and answer.asked == "And its colour?" and answer.question == "What colour was the whale?"


def test_an_empty_follow_up_is_refused_before_any_rewriting(index: Index) -> None:
    with pytest.raises(ValueError, match="the question is empty"):
        pipeline(index, Recording("Anything?")).ask("  ", history("Whale oil?"))
