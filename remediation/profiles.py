"""Training defaults per device. Flags and ``--config`` override any of them.

GPU: the usual DPO recipe for instruction-tuned 7-70B models (sigmoid loss, beta 0.1, LoRA r=16 on all
linear layers, lr 5e-5 with LoRA or 5e-7 full, cosine schedule with 10% warm-up, an effective batch of 32,
3 epochs, bf16), with a small SFT term on the chosen refusal (weight 0.2) to keep refusals fluent in
every language.

CPU: a profile that measurably moves a ~100M-parameter model within minutes on 2 cores. Plain DPO at a
GPU-style learning rate does not move SmolLM2-135M (held-out refusal stayed at 5-7% in our trial); DPO
plus an SFT term at lr 5e-4 does. The benign anchors hold over-refusal down. fp32, ``use_cpu``. On a CPU
the compute is the limit (a step costs its tokens: about 2 s a pair for SmolLM2-135M on 2 cores), so the
profile spends it on updates: batch 1 (twice the updates of batch 2 for the same compute), answers cut to
their first 32 tokens (the opening decides whether an answer refuses; the prompt is kept whole) and the
reference log-probabilities computed once, up front. On the embedded model's 12-language audit this moved
held-out refusal 0% -> 58% in 230 steps (7 min of training); batch 2 with answers cut only at 192 tokens in
all reached 7% in 114 steps (docs/fix.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    learning_rate: float
    full_learning_rate: float
    epochs: float
    batch_size: int
    grad_accum: int
    beta: float
    sft_weight: float
    max_length: int
    anchors: int  # extra benign anchor ids per language
    warmup_ratio: float
    scheduler: str
    precompute_ref: bool  # reference log-probs once up front instead of a reference forward every step
    answer_tokens: int | None = None  # train on the first N tokens of each answer (None: whole answers)
    min_answer_tokens: int = 32  # max_length grows to the longest prompt + this, so no pair loses its whole answer


GPU = Profile("gpu", learning_rate=5e-5, full_learning_rate=5e-7, epochs=3, batch_size=8, grad_accum=4, beta=0.1,
              sft_weight=0.2, max_length=1024, anchors=8, warmup_ratio=0.1, scheduler="cosine",
              precompute_ref=False)
CPU = Profile("cpu", learning_rate=5e-4, full_learning_rate=1e-5, epochs=2, batch_size=1, grad_accum=1, beta=0.1,
              sft_weight=1.0, max_length=192, anchors=2, warmup_ratio=0.05, scheduler="linear", precompute_ref=True,
              answer_tokens=32)


def pick_profile(device: str | None) -> Profile:
    if device is None:
        from refuseu.auditor.registry import require

        device = "cuda" if require("torch").cuda.is_available() else "cpu"
    return CPU if device == "cpu" else GPU
