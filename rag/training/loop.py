"""The plain training loop the project's cross-encoders share: AdamW, linear warm-up and decay,
shuffled mini-batches, a smoothed loss reported after every step."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Progress = Callable[[int, int, float], None]  # (step, steps, smoothed loss)


def seed_and_threads(seed: int, threads: int | None) -> None:
    """Make a run repeatable (Python and torch seeds) and set torch's thread count (None: all cores)."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def fit(model: Any, items: Sequence[T], loss: Callable[[list[T]], Any], *, epochs: int, batch_size: int,
        learning_rate: float, warmup: float, seed: int, first_loss: float,
        progress: Progress | None = None) -> tuple[int, float]:
    """Train `model` on `items`, `loss(batch)` giving each mini-batch's loss tensor. Returns the
    number of steps and the final smoothed loss (`first_loss`: its starting value, the loss of
    an untrained model, so early reports are not dominated by the first batch)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.01)
    steps = epochs * math.ceil(len(items) / batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    rng = random.Random(seed)
    model.train()
    step, smoothed = 0, first_loss
    for _ in range(epochs):
        order = list(items)
        rng.shuffle(order)
        for first in range(0, len(order), batch_size):
            value = loss(order[first: first + batch_size])
            value.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            smoothed = 0.98 * smoothed + 0.02 * value.item()
            if progress:
                progress(step, steps, smoothed)
    model.eval()
    return steps, smoothed
