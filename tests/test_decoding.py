"""Decoding levers: the passage-free prompt, the refusal bias at the first position only (fast),
and every lever on the real generator (slow)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rag.generate import decoding, prompt
from rag.generate.backends import Sampling
from rag.retrieve import Hit

PASSAGE = "The Eiffel Tower is 330 metres tall and was finished in 1889 by Gustave Eiffel's company."
MESSAGES = prompt.messages_for("Who built the Eiffel Tower?", [Hit(1, 1, "a.txt", None, 0, 88, 0.0, "", PASSAGE)],
                               prompt.Hint(0, "Gustave Eiffel's company"))


def test_the_unconditional_prompt_keeps_the_rules_and_the_question_only() -> None:
    bare = prompt.unconditional(MESSAGES)
    assert bare[0] == MESSAGES[0] and bare[1] == {"role": "user", "content": "Question: Who built the Eiffel Tower?"}


def test_the_refusal_bias_applies_at_the_first_position_only() -> None:
    bias = decoding.FirstTokenBias(token=2, bias=4.0, prompt_length=3)
    first = bias(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 5))
    later = bias(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5))
    assert first.tolist() == [[0, 0, -4.0, 0, 0]] and later.tolist() == [[0.0] * 5]


@pytest.mark.slow
def test_levers_on_the_real_generator(generator: Any) -> None:
    tokenizer = generator.tokenizer
    refusal_start = tokenizer.encode(prompt.ABSTAIN, add_special_tokens=False)[0]
    biased = "".join(generator.stream(MESSAGES, Sampling(max_new_tokens=24, refusal_bias=100.0)))
    assert tokenizer.encode(biased.strip(), add_special_tokens=False)[0] != refusal_start
    inputs = generator._encode(MESSAGES)
    copy = decoding.options(tokenizer, inputs, MESSAGES, copy_only=True)
    allowed = set(copy["prefix_allowed_tokens_fn"](0, None))
    assert len(allowed) < 400 and refusal_start in allowed  # the prompt's own tokens, not the 49k vocabulary
    out = generator.model.generate(**inputs, max_new_tokens=24, do_sample=False, **copy)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert new and set(new) <= allowed
    guided = "".join(generator.stream(MESSAGES, Sampling(max_new_tokens=24, context_guidance=1.5)))
    assert guided.strip()
