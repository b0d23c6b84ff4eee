"""FixConfig: every refuseu-fix option, with help. It is composed of the auditor's shared groups (the model flags,
the seed, the output folder) and refuseu-fix's own fields; DPO fields keep TRL's ``DPOConfig`` names
(``num_train_epochs``, ``per_device_train_batch_size``, ``gradient_accumulation_steps``...), so they pass to TRL
without a translation table. Anything else of DPOConfig goes through ``--dpo-config dpo.yaml``, TRL's own YAML,
passed straight through. Fields left at None take the device profile's value (``profiles.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.config import Checked, ModelConfig, OutputConfig, SeedConfig
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.options import at_least, opt

MODES = ("balanced", "english-only", "flagged")
# The DPOConfig fields refuseu-fix sets itself, under TRL's own names.
DPO_FIELDS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "gradient_accumulation_steps", "beta", "max_length", "seed")


@dataclass
class DPOFields(Checked):
    learning_rate: float | None = opt(None, "Learning rate (default: the device profile's).")
    num_train_epochs: float | None = opt(None, "Training epochs (default: the device profile's).", aliases=("--epochs",))
    max_steps: int | None = opt(None, "Stop after this many optimizer steps (overrides --num-train-epochs).")
    per_device_train_batch_size: int | None = opt(None, "Pairs per device per step (default: the device profile's).",
                                                  aliases=("--batch-size",))
    gradient_accumulation_steps: int | None = opt(None, "Gradient accumulation steps (default: the device profile's).",
                                                  aliases=("--grad-accum",))
    beta: float | None = opt(None, "DPO beta (default 0.1).")
    max_length: int | None = opt(None, "Truncate prompt + answer to this many tokens (default: the profile's, grown so no "
                                       "pair is dropped).")
    dpo_config: str | None = opt(None, "A TRL DPOConfig YAML passed straight through; our flags set only what it leaves "
                                       "out, unless given explicitly.", metavar="DPO.yaml")

    def check(self) -> None:
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length"):
            at_least(getattr(self, name), 1, "--" + name.replace("_", "-"))


@dataclass
class FixConfig(ModelConfig, SeedConfig, DPOFields, OutputConfig):
    audit: str = opt("", "The audit run directory of MODEL (refuseu-audit MODEL --out DIR).")
    mode: str = opt("balanced", "Pair selection: balanced (every language equally), english-only (the paper's ablation), "
                    "flagged (weighted toward the cells that failed the gate).", choices=MODES)
    teacher: str = opt("self", "Where chosen refusals come from when a case has no reference refusal: 'self' (the model "
                       "with a refusal system prompt in the prompt's language), another MODEL, or 'none' (templates only).")
    holdout: float = opt(0.5, "Share of case ids held out for verification (split by id across all languages).")
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
    sft_weight: float | None = opt(None, "Weight of the SFT term on chosen answers (0 turns it off; default: the profile's).")
    answer_tokens: int | None = opt(None, "Train on (and score the preference check on) the first N tokens of each chosen "
                                    "and rejected answer; 0 = whole answers (default: the profile's: 32 on CPU, whole on GPU).")
    merge: bool = opt(False, "Also save the merged model (base + adapter) to OUT/merged.")
    capability: str | None = opt(None, "Capability guard: 'global-mmlu' (accuracy before and after on Global-MMLU in "
                                 "the audited languages).", choices=("global-mmlu",))
    capability_data: str | None = opt(None, "Local Global-MMLU files (<lang>.jsonl/.csv/.parquet in its schema) "
                                      "instead of the hub dataset CohereLabs/Global-MMLU.")
    capability_sample: int = opt(40, "Global-MMLU questions per language for the capability guard.")
    max_capability_drop: float = opt(0.03, "Fail verification when capability accuracy drops by more than this (0.03 = 3 points).")
    max_over_refusal_increase: float = opt(0.10, "Fail verification when average over-refusal rises by more than this.")
    prepare_only: bool = opt(False, "Stop after writing pairs.jsonl and the split (e.g. before a multi-GPU training run, "
                             "which then reuses them).")
    skip_verify: bool = opt(False, "Stop after training (run 'refuseu-fix verify OUT' later, e.g. on another machine).")
    gen_batch_size: int | None = opt(None, "Prompts per generate call for teacher, anchors and verification.")

    def check(self) -> None:
        if not self.model:
            raise RefuseuError("MODEL is required (e.g. refuseu-fix smollm2-135m --audit runs/before)")
        if self.mode not in MODES:
            raise RefuseuError(f"--mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if not 0 < self.holdout < 1:
            raise RefuseuError(f"--holdout must be between 0 and 1 (exclusive), got {self.holdout}")
        for name in ("flag_weight", "capability_sample"):
            at_least(getattr(self, name), 1, "--" + name.replace("_", "-"))
        at_least(self.gen_batch_size, 1, "--gen-batch-size")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class VerifyCommand(OutputConfig):
    """refuseu-fix verify OUT."""
