"""Reading judge input files and labeled judge sets, and running a judge over items in batches.

An input line is ``{id, lang, prompt, response}`` (``messages`` may stand in for ``prompt``); a labeled line
adds ``refusal`` (true / false, or null where the right answer is ``unjudgeable``) and ``response_lang``,
and may carry ``kind`` and ``split``. Every bad line is reported as ``file:line: field 'x': problem``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refuseu.auditor.data.cases import Case
from refuseu.auditor.data.languages import is_language_code
from refuseu.auditor.errors import RefuseuError, SuiteError
from refuseu.auditor.judges.base import Judge, JudgeItem, Verdict
from refuseu.auditor.progress import Progress

_MISSING = object()
LABELS = ("refusal", "compliance", "partial", "unjudgeable")


@dataclass(frozen=True)
class LabeledCase:
    id: str
    lang: str
    prompt: str
    response: str
    refusal: bool | None  # None: the right verdict is unjudgeable
    response_lang: str | None
    kind: str = ""
    split: str = "tuning"


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from refuseu.auditor.textfiles import iter_jsonl

    return iter_jsonl(path)


def _text(path: Path, n: int, rec: dict[str, Any], key: str, *, nullable: bool = False) -> str:
    value = rec.get(key, _MISSING)
    if value is _MISSING:
        raise SuiteError(str(path), n, key, "is missing")
    if value is None and nullable:
        return ""
    if not isinstance(value, str):
        raise SuiteError(str(path), n, key, f"must be a string, got {type(value).__name__}")
    return value


def _prompt(path: Path, n: int, rec: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if "prompt" not in rec and isinstance(rec.get("messages"), list):
        msgs = rec["messages"]
        if not msgs or not all(isinstance(m, dict) and isinstance(m.get("content"), str) and
                               m.get("role") in ("system", "user", "assistant") for m in msgs):
            raise SuiteError(str(path), n, "messages", "must be a list of {role, content} with roles system/user/assistant")
        if not any(m["role"] == "user" for m in msgs):
            raise SuiteError(str(path), n, "messages", "needs at least one user turn")
        return tuple((m["role"], m["content"]) for m in msgs)
    return (("user", _text(path, n, rec, "prompt")),)


def _id_lang(path: Path, n: int, rec: dict[str, Any], seen: set[str]) -> tuple[str, str]:
    rid = rec.get("id")
    if rid is None or isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == "":
        raise SuiteError(str(path), n, "id", "is missing or not a string/number")
    rid = str(rid)
    if rid in seen:
        raise SuiteError(str(path), n, "id", f"duplicate id '{rid}'")
    seen.add(rid)
    raw = _text(path, n, rec, "lang")
    lang = raw.strip().lower().replace("_", "-").split("-")[0]  # "EN", "pt-BR", "de_AT" name a language too
    if not is_language_code(lang):
        raise SuiteError(str(path), n, "lang", f"'{raw}' is not a two-letter language code")
    return rid, lang


def load_judge_input(path: str | Path) -> list[JudgeItem]:
    """Items to judge from a JSONL file of ``{id, lang, prompt, response}``, in file order."""
    p = Path(path)
    items, seen = [], set[str]()
    for n, rec in _lines(p):
        rid, lang = _id_lang(p, n, rec, seen)
        messages = _prompt(p, n, rec)
        response = _text(p, n, rec, "response", nullable=True)
        case = Case(rid, lang, str(rec.get("category") or "uncategorized"), "none", messages,
                    "comply" if rec.get("expected") == "comply" else "refuse")
        items.append(JudgeItem(rid, case, response))
    return items


def load_labeled(path: str | Path) -> list[LabeledCase]:
    """A labeled JSONL file, or a folder of them (every ``*.jsonl`` below it; a case without a ``split`` takes
    the name of its file's folder, so ``corpus/frozen_b/de.jsonl`` is split ``frozen_b``)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(root.rglob("*.jsonl"))
        if not files:
            raise RefuseuError(f"{root}: no .jsonl files")
        out, seen = [], set[str]()
        for f in files:
            out += _load_labeled_file(f, seen, f.parent.name)
        return out
    out = _load_labeled_file(root, set(), "tuning")
    if not out:
        raise RefuseuError(f"{root}: no cases")
    return out


def _load_labeled_file(p: Path, seen: set[str], default_split: str) -> list[LabeledCase]:
    out = []
    for n, rec in _lines(p):
        rid, lang = _id_lang(p, n, rec, seen)
        prompt = _prompt(p, n, rec)
        response = _text(p, n, rec, "response", nullable=True)
        if "refusal" not in rec and "label" in rec:  # the corpus format: refusal / compliance / partial / unjudgeable
            label = rec["label"]
            if label not in LABELS:
                raise SuiteError(str(p), n, "label", f"must be one of {', '.join(LABELS)}, got {label!r}")
            refusal = None if label == "unjudgeable" else label == "refusal"
        elif "refusal" not in rec:
            raise SuiteError(str(p), n, "refusal", "is missing (true, false, or null for unjudgeable; or give 'label')")
        else:
            refusal = rec["refusal"]
            if refusal is not None and not isinstance(refusal, bool):
                raise SuiteError(str(p), n, "refusal", f"must be true, false or null, got {refusal!r}")
        if "response_lang" not in rec:
            raise SuiteError(str(p), n, "response_lang", "is missing (a language code, or null)")
        rlang = rec["response_lang"]
        if rlang is not None and (not isinstance(rlang, str) or not is_language_code(rlang)):
            raise SuiteError(str(p), n, "response_lang", f"'{rlang}' is not a two-letter language code")
        user = next(c for r, c in reversed(prompt) if r == "user")
        out.append(LabeledCase(rid, lang, user, response, refusal, rlang, str(rec.get("kind", "")),
                               str(rec.get("split") or default_split)))
    return out


def labeled_items(cases: list[LabeledCase]) -> list[JudgeItem]:
    return [JudgeItem(c.id, Case(c.id, c.lang, "uncategorized", "none", (("user", c.prompt),)), c.response)
            for c in cases]


async def judge_items(judge: Judge, items: list[JudgeItem], on_batch: Callable[[list[Verdict]], None] | None = None,
                      *, close: bool = False) -> list[Verdict]:
    """Judge in the judge's batch size, in order; ``on_batch`` sees each batch as soon as it is done. ``close``
    releases the judge (its model) at the end, whatever happened."""
    out: list[Verdict] = []
    size = max(1, judge.batch_size)
    try:
        for i in range(0, len(items), size):
            chunk = items[i:i + size]
            verdicts = await judge.judge(chunk)
            if len(verdicts) != len(chunk):
                raise RefuseuError(f"judge '{judge.id}' returned {len(verdicts)} verdicts for {len(chunk)} answers")
            out.extend(verdicts)
            if on_batch:
                on_batch(verdicts)
    finally:
        if close:
            await judge.aclose()
    return out


async def judge_with_progress(judge: Judge, items: list[JudgeItem], progress: Progress | None) -> list[Verdict]:
    done = 0

    def on_batch(batch: list[Verdict]) -> None:
        nonlocal done
        done += len(batch)
        if progress:
            progress(f"judge:{judge.id}", done, len(items))

    return await judge_items(judge, items, on_batch, close=True)
