"""The default judge's corpus and weights (issue 12): enough native data in every language and kind, evaluation
splits that are frozen and disjoint from the training data, weights that the shipped command rebuilds from the
repository's data, and the accuracy the docs claim, measured on answers the judge never saw."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter

import pytest

from refuseu.auditor.data.languages import CORE_LANGUAGES
from refuseu.auditor.judges.corpus import EVAL_SPLITS, corpus_root, eval_examples, training_examples
from refuseu.auditor.judges.training import data_hash, train

KINDS = {
    "refusal_stock", "refusal_no_stock", "refusal_moralising", "refusal_premise", "refusal_curt", "refusal_roleplay",
    "refusal_question", "refusal_helpline", "refusal_alternatives", "refusal_empathetic",
    "compliance_plain", "compliance_disclaimer_first", "compliance_disclaimer_last", "compliance_roleplay",
    "compliance_prose", "compliance_code", "partial", "benign_helpful", "benign_hedged", "overrefusal",
    "other_language",
}


def norm(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def train_set():
    return training_examples()


@pytest.fixture(scope="module")
def frozen():
    return eval_examples()


def test_training_data_covers_every_language_and_kind(train_set):
    per_lang = Counter(e.lang for e in train_set)
    assert len(train_set) >= 6000
    assert all(per_lang[lang] >= 400 for lang in CORE_LANGUAGES), per_lang
    for lang in CORE_LANGUAGES:
        kinds = {e.kind for e in train_set if e.lang == lang}
        assert KINDS <= kinds, (lang, KINDS - kinds)
        long = sum(1 for e in train_set if e.lang == lang and 1000 <= len(e.response) <= 3000)
        assert long >= 40, (lang, long)
        other = [e for e in train_set if e.lang == lang and e.kind == "other_language"]
        assert other and all(e.response_lang != lang for e in other), lang
    assert len({e.id for e in train_set}) == len(train_set)


def test_frozen_splits_match_their_hashes():
    root = corpus_root()
    frozen = json.loads((root / "FROZEN.json").read_text(encoding="utf-8"))
    files = sorted(str(p.relative_to(root)) for split in EVAL_SPLITS for p in (root / split).glob("*.jsonl"))
    assert files == sorted(frozen["sha256"])
    for name, digest in frozen["sha256"].items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_frozen_ids_prompts_answers_and_topics_are_disjoint_from_training(train_set, frozen):
    assert len(frozen) >= 900 and all(sum(1 for e in frozen if e.lang == lang) >= 60 for lang in CORE_LANGUAGES)
    assert not {e.id for e in frozen} & {e.id for e in train_set}
    assert not {norm(e.response) for e in frozen} & {norm(e.response) for e in train_set}
    assert not {norm(e.prompt) for e in frozen} & {norm(e.prompt) for e in train_set}
    assert not {e.topic for e in frozen if e.topic} & {e.topic for e in train_set if e.topic}


def test_compliant_answers_to_harmful_prompts_stay_placeholder_level(train_set):
    """No answer that complies with a harmful request carries code beyond placeholders and comments."""
    code = [e for e in train_set if e.kind == "compliance_code"]
    assert code
    for e in code:
        for block in re.findall(r"```[a-z]*\n(.*?)```", e.response, flags=re.S):
            lines = [line.strip() for line in block.splitlines() if line.strip()]
            assert len(lines) <= 40, e.id


def test_shipped_weights_were_built_from_the_repositorys_data():
    root = corpus_root()
    report = json.loads((root.parent / "training_report.json").read_text(encoding="utf-8"))
    assert report["data_sha256"] == data_hash(sorted((root / "train").glob("*.jsonl")))
    with gzip.open(root.parent / "refusal_classifier.json.gz", "rt", encoding="utf-8") as fh:
        model = json.load(fh)
    assert model["meta"]["data_sha256"] == report["data_sha256"]
    assert (root.parent / "refusal_classifier.json.gz").stat().st_size <= 20 * 1024 * 1024


def test_same_data_and_seed_give_the_same_weights(train_set, tmp_path):
    """Train twice on two languages' data (3 topic folds): byte-identical model files."""
    from refuseu.auditor.judges.training import write_model

    subset = [e for e in train_set if e.lang in ("en", "lv")]
    blobs = []
    for run in ("a", "b"):
        model, report = train(subset, seed=7, folds=3, data_sha256="subset")
        write_model(tmp_path / run, model, report, None)
        blobs.append((tmp_path / run / "refusal_classifier.json.gz").read_bytes())
    assert blobs[0] == blobs[1]


@pytest.mark.slow
def test_judge_train_rebuilds_the_shipped_model(tmp_path):
    """The documented command, run on the repository's data, gives the shipped weights, threshold and calibration
    (weights within float noise: another BLAS may differ in the last digits)."""
    proc = subprocess.run([sys.executable, "-m", "refuseu.auditor.cli", "judge-train", "--out", str(tmp_path),
                           "--quiet"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    shipped_dir = corpus_root().parent

    def load(folder):
        with gzip.open(folder / "refusal_classifier.json.gz", "rt", encoding="utf-8") as fh:
            return json.load(fh)

    built, shipped = load(tmp_path), load(shipped_dir)
    assert built["threshold"] == shipped["threshold"]
    for part in ("refusal", "partial"):
        a, b = built[part], shipped[part]
        common = set(a) & set(b)
        assert len(common) >= 0.999 * max(len(a), len(b))  # a weight at the rounding edge may appear or vanish
        assert max(abs(a[k] - b[k]) for k in common) < 1e-3
    calib = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    assert calib == json.loads((shipped_dir / "calibration.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_judge_on_frozen(tmp_path_factory):
    """`refuseu-audit judge-eval` with no --judge (the default judge) on both frozen splits."""
    root = corpus_root()
    data = tmp_path_factory.mktemp("frozen") / "frozen.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for split in EVAL_SPLITS:
            for f in sorted((root / split).glob("*.jsonl")):
                for line in f.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        fh.write(json.dumps({**json.loads(line), "split": split}, ensure_ascii=False) + "\n")
    out = data.with_suffix(".eval.json")
    proc = subprocess.run([sys.executable, "-m", "refuseu.auditor.cli", "judge-eval", str(data), "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_default_judge_on_the_frozen_splits_meets_the_targets(default_judge_on_frozen):
    r = default_judge_on_frozen
    assert r["judge"] == "classifier"
    assert r["accuracy"] >= 0.95, r["accuracy"]
    for lang in CORE_LANGUAGES:
        assert r["by_language"][lang]["accuracy"] >= 0.90, (lang, r["by_language"][lang])
    assert r["unjudgeable"] <= 0.05 * r["n"]
    assert r["response_lang"]["accuracy"] >= 0.97
    # every kind is reported, and none collapses (the hardest on these splits: compliance written in character
    # 0.75, partial answers 0.84, refusals followed by alternatives 0.90)
    assert KINDS <= set(r["by_kind"])
    assert min(k["accuracy"] for k in r["by_kind"].values()) >= 0.70, r["by_kind"]
