"""Streaming never takes back what it showed: for scripted drafts cut into pieces at random and every
branch of the decision, the pipeline's Deltas are the final answer's text, and each answer carries
its short answer (rag.decision.short_answer)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag import decision
from rag.answer import GENERATOR, READER, Answer, AnswerConfig, Answerer, Delta, Event, Evidence
from rag.conversation import Turn
from rag.decision import MODEL_ABSTAINED, NO_PASSAGES, READER_NO_ANSWER, UNSUPPORTED_ANSWER, Gate
from rag.generate import citations as cites
from rag.generate.backends import Messages, Sampling
from rag.generate.prompt import ABSTAIN
from rag.index import Index
from rag.pipeline import Pipeline, Trimmed
from tests.conftest import Scripted
from tests.test_pipeline import POLICY, QUESTION, SUPPORTED, FakeReader, Rejecting, pipeline, spanned
from tests.test_verify import CodeVerifier, Graded, KeywordVerifier


class Chunked(Scripted):
    """The reply after some whitespace, cut at seeded random places (a model's pieces need not be words)."""

    def __init__(self, reply: str, seed: int) -> None:
        super().__init__(reply)
        self.seed = seed

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        self.prompts.append(messages)
        rng = random.Random(self.seed)
        text = rng.choice(["", " ", "\n "]) + self.reply + rng.choice(["", " ", "\n"])
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 6))))
        yield from (text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True))


def streamed(events: Iterator[Event]) -> tuple[list[str], Answer]:
    """The Deltas' texts, and the final Answer, checking that nothing follows it."""
    items = list(events)
    assert isinstance(items[-1], Answer) and all(isinstance(e, Delta) for e in items[:-1])
    return [e.text for e in items[:-1] if isinstance(e, Delta)], items[-1]


# (draft, the reader's margin, verifier, what decides): every branch of rag.decision.decide
BRANCHES = [
    (SUPPORTED, 5.0, KeywordVerifier(), GENERATOR),  # kept draft
    ("In 1901 [1].", 5.0, KeywordVerifier(), READER),  # the span replaces an unsupported draft
    (ABSTAIN, 5.0, KeywordVerifier(), READER),  # the span replaces a refusal
    (ABSTAIN, 1.0, KeywordVerifier(), MODEL_ABSTAINED),  # a refusal, the span too weak
    ("In 1901 [1].", 1.0, KeywordVerifier(), UNSUPPORTED_ANSWER),  # unsupported, the span too weak
    (ABSTAIN, 5.0, Rejecting(), UNSUPPORTED_ANSWER),  # strong span, rejected by the verifier
    (SUPPORTED, -3.0, KeywordVerifier(), READER_NO_ANSWER),  # the reader finds nothing: never generated
]


@pytest.mark.parametrize(("draft", "margin", "verifier", "decided"), BRANCHES)
def test_no_branch_streams_text_the_final_answer_does_not_hold(indexed: Index, draft: str, margin: float,
                                                               verifier: KeywordVerifier, decided: str) -> None:
    for seed in range(5):
        answers = pipeline(indexed, draft, margin=margin, verifier=verifier)
        answers.answerer.generator = Chunked(draft, seed)
        pieces, answer = streamed(answers.stream(QUESTION))
        assert decided in (answer.answered_by, answer.abstain_reason)
        assert "".join(pieces) == answer.answer and len(pieces) == 1  # shown once decided, whole
        assert answer.timings["first_text_s"] >= answer.timings["total_s"] - 0.001
        if decided == READER:
            assert answer.draft == draft and draft not in "".join(pieces) and answer.short == "1846"
            assert answer.answer == spanned(indexed)
        elif decided == GENERATOR:
            assert answer.short == "1846" and answer.draft is None  # the reader's span inside the draft
        else:
            assert answer.short is None and answer.answer == ABSTAIN


def test_without_a_policy_the_draft_is_the_answer_and_streams_as_it_is_written(indexed: Index) -> None:
    drafts = [SUPPORTED, "In 1901 [1].", ABSTAIN, "Two sentences [1].  Here\n[2]."]
    for draft in drafts:
        for seed in range(8):
            answers = Pipeline(Answerer(indexed, Chunked(draft, seed), AnswerConfig(k=4), gate=Gate()),
                               KeywordVerifier())
            pieces, answer = streamed(answers.stream(QUESTION))
            assert "".join(pieces) == answer.answer == draft and all(pieces)
            assert answer.timings["first_text_s"] <= answer.timings["total_s"]  # shown before the check
    kept = Pipeline(Answerer(indexed, Chunked(SUPPORTED, 0), AnswerConfig(k=4), gate=Gate()),
                    KeywordVerifier()).ask(QUESTION)
    assert kept.short == "1846"  # no reader: what the answering sentence adds to the question


def test_strict_mode_streams_only_the_kept_sentences(indexed: Index) -> None:
    draft = "Whale oil was replaced by colza oil in 1846 [1]. Cows fly [2]."
    answers = Pipeline(Answerer(indexed, Chunked(draft, 3), AnswerConfig(k=4), gate=Gate()), KeywordVerifier(),
                       strict=True)
    pieces, answer = streamed(answers.stream(QUESTION))
    assert "".join(pieces) == answer.answer and "Cows" not in answer.answer and answer.answer.startswith("Whale")
    nothing = Pipeline(Answerer(indexed, Chunked("Cows fly [2].", 1), AnswerConfig(k=4), gate=Gate()),
                       KeywordVerifier(), strict=True)
    pieces, answer = streamed(nothing.stream(QUESTION))
    assert pieces == [ABSTAIN] and answer.abstain_reason == UNSUPPORTED_ANSWER and answer.short is None


def test_decisions_before_generating_and_the_reader_alone_stream_their_final_text(indexed: Index) -> None:
    gated = Pipeline(Answerer(indexed, Scripted("never"), AnswerConfig(), FakeReader("1846", 9.0),
                              Gate(min_dense_score=0.99)), KeywordVerifier(), POLICY)
    pieces, answer = streamed(gated.stream(QUESTION))
    assert pieces == [ABSTAIN] and answer.abstain_reason == NO_PASSAGES
    for margin, text in ((5.0, spanned(indexed)), (1.0, ABSTAIN)):  # the span, or too weak to answer
        pieces, answer = streamed(pipeline(indexed, None, margin=margin).stream(QUESTION))
        assert pieces == [text] == [answer.answer]
    assert answer.abstain_reason == READER_NO_ANSWER


def test_a_follow_up_streams_as_its_standalone_question_would(indexed: Index) -> None:
    history = [Turn("user", QUESTION), Turn("assistant", "1846 [1].")]
    pieces, answer = streamed(pipeline(indexed, "In 1901 [1].").stream("And colza oil?", history))
    assert "".join(pieces) == answer.answer and "1901" not in answer.answer


@given(st.text(alphabet=" \n\tab.", max_size=12), st.lists(st.integers(0, 12), max_size=4))
def test_trimmed_pieces_make_the_stripped_whole(text: str, cuts: list[int]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    trim = Trimmed()
    shown = [trim.add(text[a:b]) for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert "".join(shown) == text.strip()


def test_the_short_answer_is_the_best_span_the_answer_holds_as_the_answer_writes_it(indexed: Index) -> None:
    assert pipeline(indexed, "It was replaced in 1846 [1].").ask(QUESTION).short == "1846"
    answer = pipeline(indexed, SUPPORTED).ask(QUESTION)
    evidence = [Evidence(1, "paraffin", 0, 8, 9.0, 0.0, 9.0), Evidence(2, "colza oil", 0, 9, 5.0, 0.0, 5.0)]
    written = replace(answer, answer="Whale oil gave way to Colza\noil [1].", evidence=evidence)
    assert decision.short_answer(written) == "Colza\noil"  # the second span: the answer does not hold the first
    assert decision.short_answer(replace(written, abstained=True)) is None


def test_without_a_span_the_short_answer_is_what_the_answering_sentence_adds(indexed: Index) -> None:
    answer = pipeline(indexed, SUPPORTED).ask(QUESTION)

    def short(text: str, question: str = "Who won Super Bowl 50?") -> str | None:
        sentences = cites.parse(text, []).sentences
        return decision.short_answer(replace(answer, question=question, answer=text, sentences=sentences,
                                             evidence=[]))

    assert short("The Broncos won Super Bowl 50 [1].") == "Broncos"
    assert short("According to the summary table, the Broncos won Super Bowl 50 [2].") == "Broncos"
    assert short("Denver [1].") == "Denver"  # a short answer already
    assert short("Super Bowl 50 was won [1].") == "Super Bowl 50 was won"  # adds nothing: the sentence
    how = "How do I create an environment?"
    assert short("Open a terminal [1]. Run `python -m venv env` to create it [1].", how) == "Run `python -m venv env`"


class Watched(Scripted):
    """The reply in pieces of `size` characters, noting how many pieces the consumer had been given
    when the generator wrote its last."""

    def __init__(self, reply: str, size: int, seen: list[str]) -> None:
        super().__init__(reply)
        self.size, self.seen, self.shown_before_last = size, seen, -1

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        pieces = [self.reply[n:n + self.size] for n in range(0, len(self.reply), self.size)]
        yield from pieces[:-1]
        self.shown_before_last = len(self.seen)
        yield pieces[-1]


def watch(answers: Pipeline, question: str, draft: str, size: int) -> tuple[list[str], Answer, Watched]:
    """`answers` streaming `draft` in pieces of `size`: the Deltas' texts, the final Answer, and the
    generator, which noted how many Deltas had been shown before its last piece."""
    seen: list[str] = []
    answers.answerer.generator = watched = Watched(draft, size, seen)
    items = []
    for event in answers.stream(question):
        items.append(event)
        if isinstance(event, Delta):
            seen.append(event.text)
    pieces, answer = streamed(iter(items))
    return pieces, answer, watched


def test_a_draft_whose_first_sentence_is_supported_is_shown_sentence_by_sentence(indexed: Index) -> None:
    """The first sentence decides (rag.decision.by_lead): once it is checked and supported it is shown
    while the model still writes; a later unsupported sentence stays, marked; the shown text is the answer."""
    draft = f"{SUPPORTED} Cows fly [2]. It was cheaper [1]."
    for size in (1, 3, 7, 20):
        pieces, answer, watched = watch(pipeline(indexed, draft), QUESTION, draft, size)
        assert "".join(pieces) == answer.answer and answer.answered_by == GENERATOR
        assert watched.shown_before_last >= 1 and pieces[0].startswith("Whale oil")  # before the model finished
        assert [s.verdict for s in answer.sentences][1] == "unsupported"


def test_under_compare_the_first_sentence_and_the_span_are_weighed_before_anything_is_shown(indexed: Index) -> None:
    """`compare` is decided from the first sentence: outranked by the span, nothing of the draft is
    shown and the span's sentence answers; else the draft streams sentence by sentence."""
    draft = "Whale oil was replaced by colza oil [1]. It was cheaper [1]."  # supported, without the span "1846"
    compare = replace(POLICY, compare=True)
    for size in (1, 6):
        pieces, answer, _ = watch(pipeline(indexed, draft, verifier=Graded("1846"), policy=compare), QUESTION, draft,
                                  size)
        assert pieces == [answer.answer] == [spanned(indexed)] and answer.draft == draft
        pieces, answer, watched = watch(pipeline(indexed, draft, verifier=Graded("colza"), policy=compare), QUESTION,
                                        draft, size)
        assert "".join(pieces) == answer.answer == draft and answer.answered_by == GENERATOR
        assert watched.shown_before_last >= 1


def test_a_draft_whose_first_sentence_is_unsupported_shows_none_of_it(indexed: Index) -> None:
    draft = f"In 1901 [1]. {SUPPORTED}"
    for seed in range(6):
        answers = pipeline(indexed, draft)
        answers.answerer.generator = Chunked(draft, seed)
        pieces, answer = streamed(answers.stream(QUESTION))
        assert pieces == [answer.answer] == [spanned(indexed)] and answer.draft == draft


def test_a_draft_written_as_steps_streams_each_step_whole(indexed: Index) -> None:
    """A numbered step is shown once it is complete, with its code block, never cut at a full stop
    inside it; what is shown is the answer."""
    steps = "1. Cows fly [2].\n2. Run this:\n   ```\n   fly. now\n   ```\n   It works. Really.\n3. It was cheaper [1]."
    draft = f"{SUPPORTED}\n\n{steps}"
    for size in (1, 4, 13):
        answers = pipeline(indexed, draft)
        answers.answerer.generator = Watched(draft, size, [])
        pieces, answer = streamed(answers.stream(QUESTION))
        assert "".join(pieces) == answer.answer and answer.answered_by == GENERATOR
        assert [s.text.split()[0] for s in answer.sentences] == ["Whale", "Cows", "Run", "It"]
        assert answer.sentences[2].text == "Run this: ``` fly. now ``` It works. Really."
        assert any(piece.strip().startswith("2. Run this:") and piece.rstrip().endswith("Really.") for piece in pieces)


def test_a_how_to_draft_shows_nothing_before_its_first_step_giving_code_is_checked(indexed: Index) -> None:
    """Under "How do I ...?" the step with the command decides (rag.decision.answering): the steps
    before it wait for it, then show with it; what is shown is the answer."""
    how = "How do I get whale oil replaced by colza oil?"
    draft = "1. Open your terminal.\n2. Run `whale oil was replaced by colza oil in 1846` [1].\n3. Wait a bit."
    for size in (1, 5, 17):
        pieces, answer, watched = watch(pipeline(indexed, draft, verifier=CodeVerifier()), how, draft, size)
        assert "".join(pieces) == answer.answer and answer.answered_by == GENERATOR
        assert pieces[0].startswith("1. Open your terminal.\n2. Run `whale")  # shown together, once checked
        assert watched.shown_before_last >= 1  # before the model finished
        assert [s.verdict for s in answer.sentences] == ["unsupported", "supported", "unsupported"]
