"""The conversation format of `rag eval answers`: follow-up questions asked after the turns
before them, each beside the same question written out in full and asked alone.

A line of the file is
`{"id": ..., "history": [{"role": "user" | "assistant", "content": ...}, ...], "question": the
follow-up, "standalone": the same question written out, "answers": [...]?, "answerable": bool?}`.
Each line is asked twice: the follow-up with its history (rewritten by the pipeline's
condenser, rag.conversation) and the standalone question with none, whose outcome id ends in
STANDALONE. The report gives the follow-ups' metrics, the standalone questions' beside them,
and the ratio of answers right and cited: the share of what the pipeline answers when asked
plainly that it still answers when asked in a conversation.
"""

from __future__ import annotations

from typing import Any

from rag import metrics
from rag.conversation import ASSISTANT, USER, Turn

STANDALONE = "~standalone"  # suffix of the outcome id of a follow-up's standalone question
COMPARED = ("right_and_cited", "abstention", "wrong_abstention", "gold_retrieved", "exact_match", "f1")


def history(value: Any) -> tuple[Turn, ...]:
    """The turns of a line's "history", or a ValueError saying what is wrong with it."""
    if not isinstance(value, list) or not value:
        raise ValueError("'history' must be a non-empty list of turns")
    turns = []
    for n, turn in enumerate(value, 1):
        if not isinstance(turn, dict) or turn.get("role") not in (USER, ASSISTANT) or \
                not isinstance(turn.get("content"), str):
            raise ValueError(f"'history' turn {n} must be {{\"role\": \"user\" or \"assistant\", "
                             "\"content\": a string}")
        turns.append(Turn(turn["role"], turn["content"]))
    if not any(t.role == USER for t in turns):
        raise ValueError("'history' holds no user turn")
    return tuple(turns)


def split(outcomes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The follow-ups' outcomes and the standalone questions' outcomes."""
    alone = [o for o in outcomes if str(o["id"]).endswith(STANDALONE)]
    return [o for o in outcomes if not str(o["id"]).endswith(STANDALONE)], alone


def compare(follow_ups: dict[str, Any], standalone: dict[str, Any], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The follow-ups' metrics, the standalone questions' beside them (prefixed standalone_),
    the ratio of right-and-cited answers, how many follow-ups were rewritten, and what the
    rewriting cost (`outcomes`: the follow-ups')."""
    ours, theirs = follow_ups["right_and_cited"], standalone["right_and_cited"]
    condense = [o["timings"].get("condense_s") for o in outcomes]
    return {**follow_ups, **{f"standalone_{name}": standalone[name] for name in COMPARED},
            "right_and_cited_ratio": None if ours is None or not theirs else round(ours / theirs, 4),
            "rewritten": metrics.share([o["answered_as"] != o["question"] for o in outcomes]),
            "condense_p50_s": metrics.percentile(condense, 50), "condense_p90_s": metrics.percentile(condense, 90)}
