"""DPO training with TRL's ``DPOTrainer``: LoRA through peft by default, ``--full`` for full fine-tuning.

Configuration layers, lowest first: the device profile (profiles.py) < the ``--dpo-config`` DPOConfig YAML
(TRL's own fields, passed straight through) < flags given explicitly on the command line. The resolved
DPOConfig is recorded in fix.json (``train.dpo_config``); every logged step goes to ``train_log.jsonl``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.registry import require
from refuseu.remediation.config import DPO_FIELDS, FixConfig
from refuseu.remediation.layout import FixDir
from refuseu.remediation.profiles import Profile


def load_dpo_yaml(path: str | None) -> dict[str, Any]:
    from refuseu.auditor.options import load_yaml_mapping

    return load_yaml_mapping(path, "--dpo-config", "DPOConfig field: value") if path else {}


def answer_window(cfg: FixConfig, profile: Profile) -> int | None:
    """How many tokens of each answer are trained on (None: whole answers)."""
    n = cfg.answer_tokens if cfg.answer_tokens is not None else profile.answer_tokens
    return n or None


def profile_max_length(profile: Profile, prompt_tokens: int | None, answer_tokens: int | None) -> int:
    """The profile's max_length, grown to leave room for an answer after the longest prompt: TRL drops a pair
    whose prompt alone fills max_length. ``prompt_tokens`` is the longest prompt; with an answer window the
    result is exactly that plus the window."""
    if prompt_tokens is None:
        return profile.max_length
    if answer_tokens:
        return prompt_tokens + answer_tokens + 8  # + the chat template's end-of-turn tokens
    return max(profile.max_length, prompt_tokens + profile.min_answer_tokens)


def dpo_arguments(cfg: FixConfig, profile: Profile, explicit: set[str], out: Path, on_cpu: bool,
                  prompt_tokens: int | None = None) -> dict[str, Any]:
    """The DPOConfig keyword arguments: profile < --config YAML < explicit flags. ``prompt_tokens`` (the
    longest prompt) lets the profile's max_length grow so that no pair is dropped."""
    full = cfg.full
    ours: dict[str, Any] = {
        "learning_rate": cfg.learning_rate or (profile.full_learning_rate if full else profile.learning_rate),
        "num_train_epochs": cfg.num_train_epochs or profile.epochs,
        "per_device_train_batch_size": cfg.per_device_train_batch_size or profile.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps or profile.grad_accum,
        "beta": cfg.beta if cfg.beta is not None else profile.beta,
        "max_length": cfg.max_length or profile_max_length(profile, prompt_tokens, answer_window(cfg, profile)),
        "seed": cfg.seed,
    }
    if cfg.max_steps:
        ours["max_steps"] = cfg.max_steps
    sft = cfg.sft_weight if cfg.sft_weight is not None else profile.sft_weight
    if sft > 0:
        ours.update(loss_type=["sigmoid", "sft"], loss_weights=[1.0, sft])
    # Our fields carry TRL's names; only the SFT term maps onto two of TRL's fields.
    flag_for = {**{name: name for name in DPO_FIELDS}, "loss_type": "sft_weight", "loss_weights": "sft_weight"}
    base: dict[str, Any] = {
        "output_dir": str(FixDir(out).checkpoints),
        "lr_scheduler_type": profile.scheduler,
        "warmup_steps": profile.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,  # our rich bar shows progress
        "remove_unused_columns": False,
        "precompute_ref_log_probs": profile.precompute_ref,
    }
    if on_cpu:
        # Recomputing activations saves memory a small model does not need, at a cost CPUs cannot spare.
        base.update(use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False)
    else:
        base.update(bf16=_bf16_ok(), activation_checkpointing=True)
    passthrough = load_dpo_yaml(cfg.dpo_config)
    merged = {**base, **ours}
    for key, value in passthrough.items():
        if flag_for.get(key) in explicit:
            continue  # an explicit flag beats the YAML
        merged[key] = value
    return merged


def cut_answer(tokenizer: Any, messages: list[dict[str, str]], n_tokens: int) -> list[dict[str, str]]:
    """An answer (its last message) cut to its first ``n_tokens`` tokens."""
    last = messages[-1]
    ids = tokenizer(last["content"], add_special_tokens=False)["input_ids"]
    if len(ids) <= n_tokens:
        return messages
    return [*messages[:-1], {**last, "content": tokenizer.decode(ids[:n_tokens])}]


def cut_answers(tokenizer: Any, rows: Sequence[dict[str, Any]], n_tokens: int) -> list[dict[str, Any]]:
    """Rows whose chosen and rejected answers keep only their first ``n_tokens`` tokens. The opening of an
    answer is what decides whether it refuses; on a CPU the rest costs compute that a small model cannot
    turn into learning (and TRL would cut it anyway at max_length, later and unevenly across languages)."""
    return [{**r, "chosen": cut_answer(tokenizer, r["chosen"], n_tokens),
             "rejected": cut_answer(tokenizer, r["rejected"], n_tokens)} for r in rows]


def longest_prompt(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> int:
    """The longest prompt in tokens, as the chat template renders it for the answer to follow."""
    lengths = [len(tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True,
                                                 return_dict=False)) for r in rows]
    return max(lengths, default=0)


def _bf16_ok() -> bool:
    torch = require("torch")
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


class _Logger:
    """TrainerCallback pieces: every log line to train_log.jsonl, progress to a callable."""

    def __init__(self, path: Path, progress: Any) -> None:
        self.path, self.progress, self.start = path, progress, time.perf_counter()

    def make(self) -> Any:
        transformers = require("transformers")
        outer = self

        class Callback(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
                if not state.is_world_process_zero or not logs:
                    return
                rec = {"step": state.global_step, "epoch": state.epoch,
                       "elapsed_s": round(time.perf_counter() - outer.start, 2), **logs}
                with outer.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if outer.progress and state.is_world_process_zero:
                    outer.progress("train", state.global_step, state.max_steps)

        return Callback()


def train_dpo(model_path: str, rows: Sequence[dict[str, Any]], cfg: FixConfig, profile: Profile, explicit: set[str],
              out: Path, progress: Any = None) -> dict[str, Any]:
    """Train on ``rows`` (prompt/chosen/rejected) and save the adapter (or the full model). Returns facts
    for the model card: the resolved DPOConfig, steps, wall time and the last logged metrics."""
    torch = require("torch")
    transformers = require("transformers")
    datasets = require("datasets")
    trl = require("trl")
    from refuseu.auditor.models.hf_loading import pick_device_dtype, quiet_transformers

    quiet_transformers(transformers)
    if cfg.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # TRL's reference log-prob pass draws its own tqdm bar
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    if not rows:
        raise RefuseuError("no training pairs: nothing to train on")
    device, dtype = pick_device_dtype(cfg.device, cfg.dtype)
    on_cpu = device == "cpu"
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    answer_tokens = answer_window(cfg, profile)
    if answer_tokens:
        rows = cut_answers(tokenizer, rows, answer_tokens)
    longest = longest_prompt(tokenizer, rows)
    args = dpo_arguments(cfg, profile, explicit, out, on_cpu, longest)
    try:
        dpo_config = trl.DPOConfig(**args)
    except TypeError as exc:
        raise RefuseuError(f"{cfg.dpo_config or 'DPOConfig'}: {exc}") from None
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    peft_config = None
    if not cfg.full:
        peft = require("peft")
        targets: Any = cfg.lora_targets if cfg.lora_targets == "all-linear" else [
            t.strip() for t in cfg.lora_targets.split(",") if t.strip()]
        peft_config = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                      target_modules=targets, task_type="CAUSAL_LM")
    torch.manual_seed(cfg.seed)
    dataset = datasets.Dataset.from_list(list(rows))
    log_path = FixDir(out).train_log
    log_path.unlink(missing_ok=True)
    trainer = trl.DPOTrainer(model=model, args=dpo_config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[_Logger(log_path, progress).make()])
    trainer.remove_callback(transformers.PrinterCallback)  # logs go to train_log.jsonl, not stdout
    dropped = len(rows) - len(trainer.train_dataset)
    if not len(trainer.train_dataset):
        raise RefuseuError(f"every training pair's prompt fills max_length={args.get('max_length')} tokens "
                           f"(longest prompt: {longest}); raise --max-length")
    if dropped:
        # TRL filters out pairs whose prompt alone fills max_length; say so instead of training on fewer quietly.
        print(f"refuseu-fix: warning: {dropped} of {len(rows)} training pairs dropped: their prompt alone fills "
              f"max_length={args.get('max_length')} tokens (longest prompt: {longest}); raise --max-length to keep them",
              file=sys.stderr)
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    target = FixDir(out).fixed_model(cfg.full)
    trainer.save_model(str(target))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(target))
    recorded = {k: v for k, v in dpo_config.to_dict().items() if k in args or k in ("loss_type", "loss_weights")}
    return {"dpo_config": recorded, "steps": int(result.global_step), "train_loss": float(result.training_loss),
            "wall_s": round(wall, 1), "n_rows": len(rows), "n_dropped_too_long": dropped, "longest_prompt_tokens": longest,
            "answer_tokens": answer_tokens, "device": device, "dtype": str(dtype).replace("torch.", ""),
            "method": "full" if cfg.full else "lora", "saved_to": target.name}


def set_adapter_base(adapter_dir: Path, base_model: str) -> None:
    """Point the adapter at the MODEL the user gave (an alias, folder or hub id), not at our conversion
    cache, so ``refuseu-audit OUT/adapter`` and peft find the base model on any machine."""
    path = adapter_dir / "adapter_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = base_model
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def merge_adapter(model_path: str, adapter_dir: Path, target: Path, trust_remote_code: bool) -> None:
    """Base + adapter merged into a plain model folder (on the CPU, in fp32: works whatever trained it)."""
    torch = require("torch")
    transformers = require("transformers")
    peft = require("peft")
    base = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32,
                                                             trust_remote_code=trust_remote_code)
    merged = peft.PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(target))
    transformers.AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(target))
