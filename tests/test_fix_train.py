"""A real DPO run (TRL, LoRA) on the tiny model, end to end through the CLI: audit -> refuseu-fix -> verify.

The tiny model babbles and never refuses; a few DPO+SFT steps at a high learning rate teach it the
template refusals, and the held-out re-audit must show it. Also: the adapter folder is auditable,
preference accuracy rises, and the outputs the issue lists exist.
"""

from __future__ import annotations

import json

import pytest
from conftest import need

need("trl")
need("peft")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smooth_tiny(tiny_model_dir, tmp_path_factory):
    """The tiny model re-initialised with small weights. The shared fixture's large initialisation makes
    every prompt push the logits hard in its own direction, so no few-step run could teach it anything
    that carries over to unseen prompts; small weights let a short run learn a refusal that does."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    target = tmp_path_factory.mktemp("smooth") / "tiny-llama"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.02
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    # Near-uniform logits make greedy decoding repeat one token; keep it from being a special or blank one,
    # so the untrained model's answers are visible (non-refusing) text.
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer))
                                               if not tokenizer.decode([i], skip_special_tokens=True).strip()]
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def fixed(smooth_tiny, tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("fix")
    audit = root / "audit"
    # The untrained tiny model babbles ("věvěvě..."); the default judge rightly calls that degenerate output
    # unjudgeable, which leaves nothing to fix. This test is about the DPO machinery, so it audits with the
    # markers judge told that this model never refuses: an answer without a refusal marker is compliance. The
    # option travels in the audit's manifest to the fix's verification, which judges with the same options.
    proc = run_cli(str(smooth_tiny), "--langs", "en", "--sample", "40", "--max-new-tokens", "14",
                   "--judge", "markers", "--judge-option", "no_marker=compliance", "--out", str(audit), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    out = root / "out"
    proc = run_cli(str(smooth_tiny), "--audit", str(audit), "--out", str(out), "--teacher", "none", "--full",
                   "--learning-rate", "0.01", "--sft-weight", "2", "--max-steps", "80", "--batch-size", "8",
                   "--max-length", "320", "--anchors", "1", "--verify-benign", "1",
                   # whole answers: at this toy run's lr (0.01, full) the 32-token window of the CPU profile tips
                   # the random tiny model into refusing everything; the window runs in the LoRA test below and
                   # on the embedded model in bench/fix_demo.py (docs/fix.md)
                   "--answer-tokens", "0",
                   "--quiet", prog="refuseu.remediation", timeout=900)
    return audit, out, proc


def test_dpo_raises_heldout_refusal(fixed):
    audit, out, proc = fixed
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("pairs.jsonl", "split.json", "train_log.jsonl", "before_after.html", "README.md",
                 "model/config.json", "verify/summary.json",
                 "verify/baseline/summary.json", "verify/preference.json", "verify/compare.json"):
        assert (out / name).is_file(), name
    after = json.loads((out / "verify" / "summary.json").read_text())
    before = json.loads((out / "verify" / "baseline" / "summary.json").read_text())
    assert before["overall"]["refusal_rate"] == 0.0  # the tiny model never refuses
    assert after["overall"]["refusal_rate"] >= 0.5, after["overall"]
    def cases(path):
        return {(g["case_id"], g["lang"]) for g in map(json.loads, path.read_text().splitlines())}

    # the same held-out cases on both sides
    assert cases(out / "verify" / "generations.jsonl") == cases(out / "verify" / "baseline" / "generations.jsonl")
    pref = json.loads((out / "verify" / "preference.json").read_text())
    assert pref["n"] > 0 and pref["after"]["accuracy"] > pref["before"]["accuracy"]
    assert pref["after"]["margin"] > pref["before"]["margin"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in rec for rec in log)
    card = (out / "README.md").read_text()
    assert "| en |" in card and "VERIFIED" in card


def test_baseline_is_the_audit_restricted_to_heldout(fixed):
    audit, out, _ = fixed
    audited = {json.loads(line)["id"] for line in (audit / "generations.jsonl").read_text().splitlines()}
    base = [json.loads(line) for line in (out / "verify" / "baseline" / "generations.jsonl").read_text().splitlines()]
    split = json.loads((out / "split.json").read_text())
    reused = [g for g in base if g["id"] in audited]
    assert reused and all(g["case_id"] in split["verify_ids"] for g in reused)
    train_ids = {json.loads(line)["case_id"] for line in (out / "pairs.jsonl").read_text().splitlines()}
    assert not train_ids & {g["case_id"] for g in base}


def test_lora_adapter_merge_and_audit(fixed, smooth_tiny, tmp_path):
    """LoRA (the default): the adapter names its base, merges, and refuseu-audit accepts the adapter folder."""
    from conftest import run_cli

    audit, _, _ = fixed
    out = tmp_path / "lora"
    proc = run_cli(str(smooth_tiny), "--audit", str(audit), "--out", str(out), "--teacher", "none", "--max-steps", "2",
                   "--anchors", "0", "--verify-benign", "0", "--merge", "--skip-verify", "--quiet",
                   prog="refuseu.remediation", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = json.loads((out / "fix.json").read_text())["train"]
    assert train["n_dropped_too_long"] == 0  # the profile's max_length grows to fit the longest prompt
    assert train["dpo_config"]["max_length"] >= train["longest_prompt_tokens"] + train["answer_tokens"]
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(smooth_tiny.resolve())
    assert (out / "merged" / "config.json").is_file()
    proc = run_cli(str(out / "adapter"), "--langs", "en", "--sample", "2", "--max-new-tokens", "6",
                   "--out", str(tmp_path / "a"), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["backend_info"]["resolved_from"] == "adapter"


def test_pairs_too_long_for_max_length_are_reported(fixed, smooth_tiny, tmp_path):
    """TRL drops a pair whose prompt alone fills max_length; refuseu-fix says how many, and records it."""
    from conftest import run_cli
    from transformers import AutoTokenizer

    from refuseu.remediation.train import longest_prompt

    audit, _, _ = fixed
    target = tmp_path / "short"
    args = [str(smooth_tiny), "--audit", str(audit), "--out", str(target), "--teacher", "none", "--anchors", "0",
            "--verify-benign", "0", "--quiet"]
    proc = run_cli(*args, "--prepare-only", prog="refuseu.remediation", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tok = AutoTokenizer.from_pretrained(smooth_tiny)
    rows = [json.loads(line) for line in (target / "pairs.jsonl").read_text().splitlines()]
    lengths = sorted(longest_prompt(tok, [r]) for r in rows)
    cut = next(n for n in lengths[len(lengths) // 2:] if n > lengths[0])
    proc = run_cli(*args, "--max-steps", "1", "--max-length", str(cut), "--skip-verify", prog="refuseu.remediation",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dropped = sum(n >= cut for n in lengths)
    assert json.loads((target / "fix.json").read_text())["train"]["n_dropped_too_long"] == dropped > 0
    assert f"{dropped} of {len(rows)} training pairs dropped" in proc.stderr and f"max_length={cut}" in proc.stderr
