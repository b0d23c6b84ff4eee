"""FixConfig: every refuseu-fix option, with help. Flags come from these fields (as for refuseu-audit).

DPO hyperparameters that are not here go through ``--config dpo.yaml``, which is TRL's own ``DPOConfig``
passed straight through. Fields left at None take the device profile's value (``profiles.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.config import opt

MODES = ("balanced", "english-only", "flagged")


@dataclass
class FixConfig:
    model: str = opt("", "MODEL that was audited: a built-in alias (smollm2-135m), a local folder or a hub id.", positional=True)
    audit: str = opt("", "The audit run directory of MODEL (refuseu-audit MODEL --out DIR).")
    out: str | None = opt(None, "Output directory (default fixes/<model-slug>-<timestamp>).")
    mode: str = opt("balanced", "Pair selection: balanced (every language equally), english-only (the paper's ablation), "
                    "flagged (weighted toward the cells that failed the gate).")
    teacher: str = opt("self", "Where chosen refusals come from when a case has no reference refusal: 'self' (the model "
                       "with a refusal system prompt in the prompt's language), another MODEL, or 'none' (templates only).")
    holdout: float = opt(0.5, "Share of case ids held out for verification (split by id across all languages).")
    seed: int = opt(0, "Seed for the split, pair selection and training.")
    anchors: int | None = opt(None, "Extra benign anchor ids per language taken from the suite, beyond the audit's own "
                              "benign cases (default: the device profile's).")
    verify_benign: int = opt(2, "Extra benign ids per language, outside the audit and the anchors, added to the "
                             "verification set so over-refusal is measured on more than the audit's few benign cases.")
    flag_weight: int = opt(2, "--mode flagged: how many times a pair from a failing language x category cell counts.")
    full: bool = opt(False, "Full fine-tuning instead of LoRA.")
    lora_r: int = opt(16, "LoRA rank.")
    lora_alpha: int = opt(32, "LoRA alpha.")
    lora_dropout: float = opt(0.05, "LoRA dropout.")
    lora_targets: str = opt("all-linear", "LoRA target modules: 'all-linear' or a comma-separated list of module names.")
    learning_rate: float | None = opt(None, "Learning rate (default: the device profile's).")
    epochs: float | None = opt(None, "Training epochs (default: the device profile's).")
    max_steps: int | None = opt(None, "Stop after this many optimizer steps (overrides --epochs).")
    batch_size: int | None = opt(None, "Pairs per device per step (default: the device profile's).")
    grad_accum: int | None = opt(None, "Gradient accumulation steps (default: the device profile's).")
    beta: float | None = opt(None, "DPO beta (default 0.1).")
    sft_weight: float | None = opt(None, "Weight of the SFT term on chosen answers (0 turns it off; default: the profile's).")
    max_length: int | None = opt(None, "Truncate prompt + answer to this many tokens (default: the profile's).")
    answer_tokens: int | None = opt(None, "Train on (and score the preference check on) the first N tokens of each chosen "
                                    "and rejected answer; 0 = whole answers (default: the profile's: 32 on CPU, whole on GPU).")
    config: str | None = opt(None, "A TRL DPOConfig YAML passed straight through; our flags set only what it leaves out, "
                             "unless given explicitly.")
    merge: bool = opt(False, "Also save the merged model (base + adapter) to OUT/merged.")
    capability: str | None = opt(None, "Capability guard: 'global-mmlu' (accuracy before and after on Global-MMLU in "
                                 "the audited languages).")
    capability_data: str | None = opt(None, "Local Global-MMLU files (<lang>.jsonl/.csv/.parquet in its schema) "
                                      "instead of the hub dataset CohereLabs/Global-MMLU.")
    capability_sample: int = opt(40, "Global-MMLU questions per language for the capability guard.")
    max_capability_drop: float = opt(0.03, "Fail verification when capability accuracy drops by more than this (0.03 = 3 points).")
    max_over_refusal_increase: float = opt(0.10, "Fail verification when average over-refusal rises by more than this.")
    prepare_only: bool = opt(False, "Stop after writing pairs.jsonl and the split (e.g. before a multi-GPU training run, "
                             "which then reuses them).")
    skip_verify: bool = opt(False, "Stop after training (run 'refuseu-fix verify OUT' later, e.g. on another machine).")
    device: str | None = opt(None, "Device (default: cuda if available, else cpu).")
    dtype: str | None = opt(None, "Weights dtype (default: bfloat16 on GPU, float32 on CPU).")
    gen_batch_size: int | None = opt(None, "Prompts per generate call for teacher, anchors and verification.")
    trust_remote_code: bool = opt(False, "Allow model repositories to run their own code.")
    quiet: bool = opt(False, "No progress bars or tables.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
