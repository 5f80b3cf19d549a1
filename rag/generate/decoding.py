"""Decoding-time levers for an in-process model, each off by default and measured by
`benchmarks/decision.py` (`--refusal-bias`, `--copy-only`, `--context-guidance`):

- a bias against the refusal: the abstention sentence's first token made less likely at the
  answer's first position only (the decision, not the model, is meant to refuse);
- copying: every answer token is one the prompt holds, or a marker, punctuation or the end
  (transformers' `prefix_allowed_tokens_fn`), so the model cannot invent a name;
- context-aware decoding: the next-token logits pushed away from what the model would say
  from the question alone (transformers' classifier-free guidance, `guidance_scale` with the
  passage-free prompt as `negative_prompt_ids`).
"""

from __future__ import annotations

from typing import Any

from rag.generate.prompt import ABSTAIN, Messages, unconditional

# Besides the prompt's own tokens, what a cited answer needs: markers, punctuation, the end.
ANSWER_FURNITURE = " [1] [2] [3] [4] [5] [6] [7] [8] [9] [10]. , ; : - ' \" ( ) % $ 0123456789\n"


class FirstTokenBias:
    """A logits processor that lowers `token`'s logit by `bias` at the first generated position."""

    def __init__(self, token: int, bias: float, prompt_length: int) -> None:
        self.token, self.bias, self.prompt_length = token, bias, prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] == self.prompt_length:
            scores[:, self.token] -= self.bias
        return scores


def options(tokenizer: Any, inputs: Any, messages: Messages, refusal_bias: float = 0.0, copy_only: bool = False,
            context_guidance: float = 1.0) -> dict[str, Any]:
    """`generate` keyword arguments for the levers asked for, over the encoded prompt `inputs`."""
    out: dict[str, Any] = {}
    prompt_length = inputs["input_ids"].shape[1]
    if refusal_bias:
        from transformers import LogitsProcessorList

        first = tokenizer.encode(ABSTAIN, add_special_tokens=False)[0]
        out["logits_processor"] = LogitsProcessorList([FirstTokenBias(first, refusal_bias, prompt_length)])
    if copy_only:
        allowed = sorted(set(inputs["input_ids"][0].tolist())
                         | set(tokenizer.encode(ANSWER_FURNITURE + ABSTAIN, add_special_tokens=False))
                         | {tokenizer.eos_token_id, *_end_tokens(tokenizer)})
        out["prefix_allowed_tokens_fn"] = lambda batch, ids: allowed
    if context_guidance != 1.0:
        negative = tokenizer.apply_chat_template(unconditional(messages), add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        out |= {"guidance_scale": context_guidance,
                "negative_prompt_ids": negative["input_ids"].to(inputs["input_ids"].device)}
    return out


def _end_tokens(tokenizer: Any) -> list[int]:
    """The chat template's end-of-turn token, which ends an answer as well as the end-of-text token."""
    found = tokenizer.convert_tokens_to_ids(["<|im_end|>"])
    return [t for t in found if t is not None and t != tokenizer.unk_token_id]
