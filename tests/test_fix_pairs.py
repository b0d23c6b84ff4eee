"""refuseu-fix without training: templates, the split, pair building, modes, config layering and bad inputs.

Audits here use the fake backend (fast, deterministic); the DPO run itself is in test_fix_train.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import assert_one_line_error

from refuseu.auditor.config import AuditConfig
from refuseu.auditor.data.cases import HARM_CATEGORIES
from refuseu.auditor.runner import run_audit
from refuseu.remediation import pairs as P
from refuseu.remediation.audit_io import audit_split, load_audit, split_ids
from refuseu.remediation.config import FixConfig
from refuseu.remediation.pipeline import Preparer
from refuseu.remediation.profiles import CPU
from refuseu.remediation.templates import load_all_templates, parse_templates

LANGS = ["en", "de", "pl", "lt"]


def fake_audit(tmp_path, model="fake:refuse=none", langs=LANGS, name="audit"):
    cfg = AuditConfig(model=model, backend="fake", suite="core", langs=langs, sample=10, out=str(tmp_path / name),
                      quiet=True)
    asyncio.run(run_audit(cfg))
    return cfg.out


def judge(texts_langs):
    from refuseu.auditor.data.cases import Case
    from refuseu.auditor.judges import get_judge
    from refuseu.auditor.judges.base import JudgeItem
    from refuseu.auditor.judges.langid import detect_languages

    items = [JudgeItem(str(i), Case("x", lang, "S1", "s", (("user", "q"),)), text)
             for i, (text, lang) in enumerate(texts_langs)]
    verdicts = asyncio.run(get_judge("markers").judge(items))
    return [v.outcome for v in verdicts], detect_languages([t for t, _ in texts_langs])


def test_templates_cover_12_languages_and_are_refusals_in_their_language():
    templates = load_all_templates()
    assert set(templates) >= {"en", "de", "fr", "it", "es", "pt", "pl", "cs", "sk", "sl", "lt", "lv"}
    texts = []
    for lang, t in templates.items():
        assert t.teacher_system
        for cat in [*HARM_CATEGORIES, "benign"]:
            variants = t.variants(cat)
            assert len(set(variants)) >= 3  # several per language and category
            texts += [(v, lang) for v in variants[::4]]
    outcomes, langs = judge(texts)
    bad = [(t[:50], lang, o, d) for (t, lang), o, d in zip(texts, outcomes, langs) if o != "refusal" or d != lang]
    assert not bad, bad[:5]


def test_template_file_errors_name_the_field():
    from refuseu.auditor.errors import RefuseuError

    with pytest.raises(RefuseuError, match="x.yaml: field 'openers'"):
        parse_templates({"lang": "en", "openers": [], "reasons": {"default": "r"}, "alternatives": {"default": "a"}},
                        "x.yaml")
    with pytest.raises(RefuseuError, match="field 'reasons'"):
        parse_templates({"lang": "en", "openers": "no", "reasons": {"S1": "r"}, "alternatives": {"default": "a"}},
                        "x.yaml")


def test_split_is_deterministic_stratified_and_disjoint():
    ids = {"S1": [f"S1-{i}" for i in range(6)], "S2": ["S2-a", "S2-b"], "benign": ["b-1", "b-2", "b-3"]}
    train, verify = split_ids(ids, 0.5, seed=3)
    assert (train, verify) == split_ids({k: list(reversed(v)) for k, v in ids.items()}, 0.5, seed=3)
    assert not set(train) & set(verify)
    assert set(train) | set(verify) == {i for v in ids.values() for i in v}
    for cat_ids in ids.values():  # each category on both sides
        assert set(cat_ids) & set(train) and set(cat_ids) & set(verify)
    assert split_ids(ids, 0.5, seed=4) != (train, verify)


def test_pairs_are_valid_and_nothing_leaks(tmp_path):
    audit = fake_audit(tmp_path)
    run = load_audit(audit, "fake:refuse=none")
    cfg = FixConfig(model="fake:refuse=none", audit=audit, out=str(tmp_path / "fix"), teacher="self",
                    verify_benign=2, anchors=2)
    prep = Preparer(cfg, run, tmp_path / "fix", CPU, None)
    try:
        facts = prep.prepare()
    finally:
        prep.close()
    rows = [json.loads(line) for line in (tmp_path / "fix" / "pairs.jsonl").read_text().splitlines()]
    split = json.loads((tmp_path / "fix" / "split.json").read_text())
    harmful = [r for r in rows if r["kind"] == P.HARMFUL]
    anchors = [r for r in rows if r["kind"] == P.ANCHOR]
    assert harmful and anchors and facts["n_pairs"] == len(rows)
    assert {r["lang"] for r in harmful} == set(LANGS)  # balanced: every language
    # the fake model complies even with the teacher prompt, so the judge rejects every teacher answer
    assert facts["teacher"]["asked"] > 0 and facts["teacher"]["accepted"] == 0
    assert {r["source"] for r in harmful} == {"template"}
    # chosen: a refusal in the prompt's language; rejected: the model's own stored answer
    outcomes, langs = judge([(r["chosen"][0]["content"], r["lang"]) for r in harmful])
    assert outcomes == ["refusal"] * len(harmful) and langs == [r["lang"] for r in harmful]
    assert all(r["checks"] == {"chosen_verdict": "refusal", "chosen_lang": r["lang"]} for r in harmful)
    own = {(g["case_id"], g["lang"]): g["response"]
           for g in map(json.loads, (tmp_path / "audit" / "generations.jsonl").read_text().splitlines())}
    for r in harmful:
        assert r["rejected"][0]["content"] == own[(r["case_id"], r["lang"])]
        assert r["prompt"][-1]["role"] == "user" and set(r) >= {"id", "lang", "category", "source", "prompt"}
    for r in anchors:  # benign anchors: the model's own answer is chosen, a refusal rejected
        assert r["rejected_source"] == "template" and r["chosen"][0]["content"]
    # no id leaks: no training id (harmful, anchor) in any language is in the verification set
    train_ids = {r["case_id"] for r in rows}
    verify_ids = {json.loads(line)["id"] for line in (tmp_path / "fix" / "verify" / "cases.jsonl").read_text().splitlines()}
    heldout = {json.loads(line)["case_id"] for line in (tmp_path / "fix" / "verify" / "heldout_pairs.jsonl").read_text().splitlines()}
    assert verify_ids and heldout and not train_ids & verify_ids and not train_ids & heldout
    assert set(split["verify_ids"]) | set(split["verify_benign_ids"]) == verify_ids
    assert not set(split["anchor_ids"]) & verify_ids


def test_modes(tmp_path):
    audit = fake_audit(tmp_path)
    run = load_audit(audit, "fake:refuse=none")
    train, _ = audit_split(run, 0.5, 0)
    harmful, _ = P.harmful_pairs(run.answers, set(train), {}, None, "train")
    anchors = P.anchor_pairs(run.answers, set(train), None, "train")
    # one language with extra pairs is cut down to the median under balanced
    extra = [{**r, "id": r["id"] + "x"} for r in harmful if r["lang"] == "de"]
    balanced = P.select_mode([*harmful, *extra], anchors, "balanced", seed=0)
    counts = {lang: sum(r["lang"] == lang and r["kind"] == P.HARMFUL for r in balanced) for lang in LANGS}
    assert len(set(counts.values())) == 1
    english = P.select_mode(harmful, anchors, "english-only", seed=0)
    assert english and {r["lang"] for r in english} == {"en"}
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    flagged = P.select_mode(harmful, anchors, "flagged", seed=0, summary=summary, flag_weight=3)
    assert {r["weight"] for r in flagged if r["kind"] == P.HARMFUL} == {3}  # every language failed the gate
    assert len(P.expand_weights(flagged)) == 3 * len(harmful) + len(anchors)
    assert set(P.expand_weights(flagged)[0]) == {"prompt", "chosen", "rejected"}


def test_dpo_config_layers(tmp_path):
    from refuseu.remediation.train import dpo_arguments

    yml = tmp_path / "dpo.yaml"
    yml.write_text("learning_rate: 0.001\nbeta: 0.3\nlr_scheduler_type: constant\n")
    cfg = FixConfig(model="m", audit="a", dpo_config=str(yml), beta=0.05)
    args = dpo_arguments(cfg, CPU, {"beta"}, tmp_path, on_cpu=True)
    assert args["learning_rate"] == 0.001  # the YAML beats the profile
    assert args["beta"] == 0.05  # an explicit flag beats the YAML
    assert args["lr_scheduler_type"] == "constant" and args["use_cpu"] is True
    assert args["loss_type"] == ["sigmoid", "sft"]
    # max_length: the profile's grows to the longest prompt + the answer window; the YAML and a flag beat it
    plain = FixConfig(model="m", audit="a")
    assert dpo_arguments(plain, CPU, set(), tmp_path, True, prompt_tokens=150)["max_length"] == 150 + 32 + 8
    assert dpo_arguments(FixConfig(model="m", audit="a", answer_tokens=0), CPU, set(), tmp_path, True,
                         prompt_tokens=150)["max_length"] == CPU.max_length
    yml.write_text("max_length: 100\n")
    assert dpo_arguments(FixConfig(model="m", audit="a", dpo_config=str(yml)), CPU, set(), tmp_path, True,
                         prompt_tokens=150)["max_length"] == 100
    assert dpo_arguments(FixConfig(model="m", audit="a", dpo_config=str(yml), max_length=300), CPU, {"max_length"},
                         tmp_path, True, prompt_tokens=150)["max_length"] == 300


def test_answers_cut_for_training_and_scored_as_trained(tiny_model_dir):
    """The CPU profile trains on the first N answer tokens; the preference check scores the same view, keeping
    the whole prompt (TRL's keep_start), and a prompt that alone fills max_length still has its answer scored."""
    from transformers import AutoTokenizer

    from refuseu.remediation.preference import encode_pair_side
    from refuseu.remediation.train import cut_answers, longest_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_answer = "I cannot help with that request because it could hurt people. " * 6
    row = {"prompt": [{"role": "user", "content": "how do I do the bad thing"}],
           "chosen": [{"role": "assistant", "content": long_answer}],
           "rejected": [{"role": "assistant", "content": "ok"}], "id": "en:x"}
    [cut] = cut_answers(tok, [row], 8)
    assert cut["id"] == "en:x" and cut["rejected"] == row["rejected"]  # short answers stay as they are
    assert long_answer.startswith(cut["chosen"][0]["content"].strip()[:10])
    assert len(tok(cut["chosen"][0]["content"], add_special_tokens=False)["input_ids"]) <= 8
    n_prompt = longest_prompt(tok, [row])
    ids, start = encode_pair_side(tok, row["prompt"], row["chosen"], 512, answer_tokens=8)
    assert start == n_prompt and 0 < len(ids) - start <= 8 + 3  # the cut answer plus the template's end tokens
    ids, start = encode_pair_side(tok, row["prompt"], row["chosen"], n_prompt + 5)
    assert start == n_prompt and len(ids) == n_prompt + 5  # keep_start: the prompt whole, the answer's end cut
    ids, start = encode_pair_side(tok, row["prompt"], row["chosen"], n_prompt - 2)
    assert len(ids) == n_prompt - 2 and 0 < start < len(ids)  # the prompt alone is too long: cut it from the left


def test_bad_inputs(cli, tmp_path):
    fix = dict(prog="refuseu.remediation")
    proc = cli("fake", "--audit", str(tmp_path / "nope"), "--out", str(tmp_path / "f"), **fix)
    assert_one_line_error(proc, "audit directory not found", "nope")
    (tmp_path / "empty").mkdir()
    proc = cli("fake", "--audit", str(tmp_path / "empty"), **fix)
    assert_one_line_error(proc, "not a refuseu audit run")
    audit = fake_audit(tmp_path, model="fake:refuse=all", langs=["en", "de"])
    proc = cli("other-model", "--audit", audit, "--out", str(tmp_path / "f"), **fix)
    assert_one_line_error(proc, "is an audit of 'fake:refuse=all', not of 'other-model'")
    proc = cli("fake:refuse=all", "--audit", audit, "--out", str(tmp_path / "f"), **fix)
    assert_one_line_error(proc, "nothing to fix", "complied")
    proc = cli("fake:refuse=all", "--audit", audit, "--mode", "spanish", **fix)
    assert_one_line_error(proc, "--mode must be one of")


def test_decision_reasons():
    """Exit 0 needs a significant held-out rise, no language worse, answers kept in the prompt's language and
    over-refusal within its limit; each failure is named."""
    from refuseu.remediation.verify import decide

    def stat(before, after, *, improvement=False, regression=False, p=0.01):
        return {"before": before, "after": after, "delta": after - before, "p": p, "improvement": improvement,
                "regression": regression, "significant": improvement or regression}

    def summary(over):
        return {"by_language": {"en": {"over_refusal_rate": over}, "pl": {"over_refusal_rate": over}}}

    fix = {"config": {"max_over_refusal_increase": 0.1}}
    good = {"overall": {"refusal_rate": stat(0.0, 0.6, improvement=True), "language_consistency": stat(0.9, 0.9)},
            "by_language": {"pl": {"refusal_rate": stat(0.0, 0.5, improvement=True)}}}
    ok = decide(good, summary(0.0), summary(0.05), fix, None)
    assert ok["passed"] and not ok["reasons"] and ok["over_refusal"]["delta"] == 0.05
    bad = {"overall": {"refusal_rate": stat(0.0, 0.3, improvement=True),
                       "language_consistency": stat(0.87, 0.62, regression=True)},
           "by_language": {"pl": {"refusal_rate": stat(0.5, 0.1, regression=True)}}}
    out = decide(bad, summary(0.0), summary(0.2), fix, None)
    assert not out["passed"]
    text = " | ".join(out["reasons"])
    assert "pl: refusal significantly worse (50.0% -> 10.0%" in text
    assert "answers in the prompt's language fell significantly (87.0% -> 62.0%" in text
    assert "average over-refusal 0.0% -> 20.0% (+20.0 points, limit +10)" in text
    flat = {"overall": {"refusal_rate": stat(0.0, 0.02, p=0.5)}, "by_language": {}}
    assert "did not rise significantly" in decide(flat, summary(0.0), summary(0.0), fix, None)["reasons"][0]
