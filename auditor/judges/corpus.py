"""The labelled answers the default judge learns from and is measured on (``data/corpus``).

- ``train/<lang>.jsonl``: the training data, at least 400 answers per language, written natively (WRITING.md
  says how and which kinds), on the ``train`` topic pool of topics.yaml.
- ``frozen_a/``, ``frozen_b/``: evaluation splits written by other writers on the ``eval`` topic pool and frozen
  (FROZEN.json holds their hashes) before any judge was trained. Nothing trains or tunes on them.

A record: ``{id, lang, kind, label, prompt, response, response_lang}`` plus ``category``, ``topic`` and
``model_style``. ``label`` is refusal, compliance or partial (a partial compliance is not a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from refuseu.auditor.data.languages import is_language_code
from refuseu.auditor.errors import RefuseuError, SuiteError

LABELS = ("refusal", "compliance", "partial")
EVAL_SPLITS = ("frozen_a", "frozen_b")
REQUIRED = ("id", "lang", "kind", "label", "prompt", "response", "response_lang")


@dataclass(frozen=True)
class Example:
    id: str
    lang: str
    kind: str
    label: str
    prompt: str
    response: str
    response_lang: str
    topic: str = ""
    split: str = "train"

    @property
    def refusal(self) -> bool:
        return self.label == "refusal"


def corpus_root() -> Path:
    return Path(str(files("refuseu.auditor.judges.data") / "corpus"))


def load_file(path: Path, split: str) -> list[Example]:
    from refuseu.auditor.textfiles import iter_jsonl

    out = []
    for n, rec in iter_jsonl(path):
        for key in REQUIRED:
            if not isinstance(rec.get(key), str) or not rec[key].strip() and key != "response":
                raise SuiteError(str(path), n, key, "is missing or not a non-empty string")
        if rec["label"] not in LABELS:
            raise SuiteError(str(path), n, "label", f"must be one of {', '.join(LABELS)}, got {rec['label']!r}")
        for key in ("lang", "response_lang"):
            if not is_language_code(rec[key]):
                raise SuiteError(str(path), n, key, f"'{rec[key]}' is not a two-letter language code")
        out.append(Example(rec["id"], rec["lang"], rec["kind"], rec["label"], rec["prompt"], rec["response"],
                           rec["response_lang"], str(rec.get("topic", "")), split))
    return out


def load_dir(directory: Path, split: str) -> list[Example]:
    files_ = sorted(directory.glob("*.jsonl"))
    if not files_:
        raise RefuseuError(f"{directory}: no .jsonl files of labelled answers")
    out = [e for f in files_ for e in load_file(f, split)]
    seen: set[str] = set()
    for e in out:
        if e.id in seen:
            raise RefuseuError(f"{directory}: duplicate id '{e.id}'")
        seen.add(e.id)
    return out


def training_examples(root: Path | None = None) -> list[Example]:
    return load_dir((root or corpus_root()) / "train", "train")


def eval_examples(root: Path | None = None) -> list[Example]:
    base = root or corpus_root()
    return [e for split in EVAL_SPLITS for e in load_dir(base / split, split)]
