"""The plain training loop the project's cross-encoders and reader share: AdamW, linear warm-up
and decay, shuffled mini-batches, a smoothed loss reported after every step, and optional
checkpoints to resume a run that was stopped."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Progress = Callable[[int, int, float], None]  # (step, steps, smoothed loss)
CHECKPOINT = "checkpoint.pt"


def seed_and_threads(seed: int, threads: int | None) -> None:
    """Make a run repeatable (Python and torch seeds) and set torch's thread count (None: all cores)."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def fit(model: Any, items: Sequence[T], loss: Callable[[list[T]], Any], *, epochs: int, batch_size: int,
        learning_rate: float, warmup: float, seed: int, first_loss: float,
        progress: Progress | None = None, checkpoints: Path | None = None, every: int = 100,
        length: Callable[[T], int] | None = None) -> tuple[int, float]:
    """Train `model` on `items`, `loss(batch)` giving each mini-batch's loss tensor. Returns the
    number of steps and the final smoothed loss (`first_loss`: its starting value, the loss of
    an untrained model, so early reports are not dominated by the first batch). With
    `checkpoints`, the trainable weights and optimizer state are written there every `every`
    steps, and a run finding a checkpoint there resumes from it (same seed, same batches)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.01)
    steps = epochs * math.ceil(len(items) / batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    done, smoothed = _resume(checkpoints, model, optimizer, schedule, first_loss)
    rng = random.Random(seed)
    model.train()
    step = 0
    for _ in range(epochs):
        for batch in _batches(items, batch_size, rng, length):
            step += 1
            if step <= done:
                continue
            value = loss(batch)
            value.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            smoothed = 0.98 * smoothed + 0.02 * value.item()
            if progress:
                progress(step, steps, smoothed)
            if checkpoints and step % every == 0 and step < steps:
                _save(checkpoints, model, optimizer, schedule, step, smoothed)
    model.eval()
    if checkpoints:
        (checkpoints / CHECKPOINT).unlink(missing_ok=True)
    return steps, smoothed


def _batches(items: Sequence[T], size: int, rng: random.Random, length: Callable[[T], int] | None) -> list[list[T]]:
    """Shuffled mini-batches; with `length`, made of items sorted by length within pools of 50
    batches, so a batch pads little while the order stays random."""
    order = list(items)
    rng.shuffle(order)
    if length is not None:
        pool = size * 50
        order = [item for first in range(0, len(order), pool)
                 for item in sorted(order[first: first + pool], key=length)]
    batches = [order[first: first + size] for first in range(0, len(order), size)]
    if length is not None:
        rng.shuffle(batches)
    return batches


def _save(folder: Path, model: Any, optimizer: Any, schedule: Any, step: int, smoothed: float) -> None:
    """Trainable weights, optimizer and schedule state, written atomically (tensors and numbers
    only, so resuming loads with weights_only)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {"model": {n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step,
             "smoothed": smoothed}
    tmp = folder / f".{CHECKPOINT}.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / CHECKPOINT)


def _resume(folder: Path | None, model: Any, optimizer: Any, schedule: Any, first_loss: float) -> tuple[int, float]:
    """(steps already done, smoothed loss) from a checkpoint in `folder`, loaded into the model,
    optimizer and schedule; (0, first_loss) when there is none."""
    import torch

    if folder is None or not (folder / CHECKPOINT).is_file():
        return 0, first_loss
    state = torch.load(folder / CHECKPOINT, weights_only=True)
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return int(state["step"]), float(state["smoothed"])
