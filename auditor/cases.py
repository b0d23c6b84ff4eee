"""Case and Suite records, loading and validation of suite files, and case selection.

A suite is parallel: the same ``id`` in every language is the same request, so comparing languages
is a join on ``id``. Files are data (JSONL/CSV + ``suite.yaml``); every bad line is reported as
``file:line: field 'x': problem``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from refuseu.auditor.errors import RefuseuError, SuiteError
from refuseu.auditor.languages import is_language_code

HARM_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
BENIGN = "benign"
EXPECTED = ("refuse", "comply")
ROLES = ("system", "user", "assistant")

# Defaults for custom suites, where only ``prompt`` and ``lang`` are required (docs/suites.md).
CUSTOM_DEFAULTS = {"category": "uncategorized", "style": "none", "expected": "refuse"}


@dataclass(frozen=True)
class Case:
    """One test case: a request in one language. ``messages`` is the chat to send."""

    id: str
    lang: str
    category: str
    style: str
    messages: tuple[tuple[str, str], ...]
    expected: str = "refuse"
    reference: str | None = None  # a reference refusal (RefusEU's ``chosen``), used by refuseu-fix
    meta: tuple[tuple[str, str], ...] = ()

    @property
    def prompt(self) -> str:
        """The last user turn: what the case asks."""
        return next(content for role, content in reversed(self.messages) if role == "user")

    @property
    def harmful(self) -> bool:
        return self.expected == "refuse"

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "lang": self.lang,
            "category": self.category,
            "style": self.style,
            "messages": self.chat(),
            "expected": self.expected,
        }
        if self.reference is not None:
            out["reference"] = self.reference
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        return cls(
            id=d["id"],
            lang=d["lang"],
            category=d["category"],
            style=d["style"],
            messages=tuple((m["role"], m["content"]) for m in d["messages"]),
            expected=d.get("expected", "refuse"),
            reference=d.get("reference"),
            meta=tuple(sorted((d.get("meta") or {}).items())),
        )


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    cases: tuple[Case, ...]
    description: str = ""
    categories: dict[str, str] = field(default_factory=dict)
    styles: dict[str, str] = field(default_factory=dict)
    reference_language: str = "en"
    smoke: tuple[str, ...] = ()
    source: str = ""

    @property
    def languages(self) -> list[str]:
        return sorted({c.lang for c in self.cases}, key=_lang_order)

    @property
    def content_hash(self) -> str:
        """sha256 over the canonical JSON of every case, so two runs can prove they used the same data."""
        h = hashlib.sha256()
        for case in sorted(self.cases, key=lambda c: (c.lang, c.id)):
            h.update(json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def replace_cases(self, cases: Iterable[Case]) -> Suite:
        return dataclasses.replace(self, cases=tuple(cases))


def _lang_order(code: str) -> tuple[int, str]:
    from refuseu.auditor.languages import CORE_LANGUAGES

    return (CORE_LANGUAGES.index(code), code) if code in CORE_LANGUAGES else (len(CORE_LANGUAGES), code)


# ---------------------------------------------------------------- parsing one record


def case_from_record(
    rec: Any, path: str, line: int, *, strict: bool, categories: Sequence[str] | None = None
) -> Case:
    """Validate one raw record (a JSON object or CSV row) into a Case, or raise SuiteError."""
    if not isinstance(rec, dict):
        raise SuiteError(path, line, None, f"expected a JSON object, got {type(rec).__name__}")

    def text(name: str, *, required: bool, default: str | None = None) -> str | None:
        value = rec.get(name)
        if value is None or value == "":
            if required:
                raise SuiteError(path, line, name, "is missing")
            return default
        if not isinstance(value, str):
            raise SuiteError(path, line, name, f"must be a string, got {type(value).__name__}")
        return value

    lang = text("lang", required=True)
    assert lang is not None
    if not is_language_code(lang):
        raise SuiteError(path, line, "lang", f"'{lang}' is not a two-letter ISO 639-1 language code")

    messages = _parse_messages(rec, path, line)
    prompt_default = None
    if strict:
        case_id = text("id", required=True)
        category = text("category", required=True)
        style = text("style", required=True)
        expected = text("expected", required=True)
    else:
        prompt_default = messages[-1][1]
        case_id = text("id", required=False) or "h-" + hashlib.sha1(prompt_default.encode()).hexdigest()[:12]
        category = text("category", required=False, default=CUSTOM_DEFAULTS["category"])
        style = text("style", required=False, default=CUSTOM_DEFAULTS["style"])
        expected = text("expected", required=False)
        if expected is None:
            expected = "comply" if category == BENIGN else CUSTOM_DEFAULTS["expected"]
    assert case_id is not None and category is not None and style is not None and expected is not None
    if expected not in EXPECTED:
        raise SuiteError(path, line, "expected", f"must be 'refuse' or 'comply', got '{expected}'")
    allowed = list(categories) if categories else None
    if strict and allowed is None:
        allowed = [*HARM_CATEGORIES, BENIGN]
    if allowed is not None and category not in allowed:
        raise SuiteError(path, line, "category", f"unknown category '{category}' (allowed: {', '.join(allowed)})")
    reference = text("reference", required=False)
    known = {"id", "lang", "category", "style", "prompt", "messages", "expected", "reference"}
    meta = tuple(sorted((k, str(v)) for k, v in rec.items() if k not in known and v is not None))
    return Case(case_id, lang, category, style, messages, expected, reference, meta)


def _parse_messages(rec: dict[str, Any], path: str, line: int) -> tuple[tuple[str, str], ...]:
    prompt, messages = rec.get("prompt"), rec.get("messages")
    if prompt not in (None, "") and messages not in (None, ""):
        raise SuiteError(path, line, "prompt", "give either 'prompt' or 'messages', not both")
    if messages in (None, ""):
        if prompt is None or prompt == "":
            raise SuiteError(path, line, "prompt", "is missing (give 'prompt' or 'messages')")
        if not isinstance(prompt, str):
            raise SuiteError(path, line, "prompt", f"must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise SuiteError(path, line, "prompt", "is blank")
        return (("user", prompt),)
    if isinstance(messages, str):  # CSV cells carry messages as JSON text
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise SuiteError(path, line, "messages", f"is not valid JSON: {exc.msg}") from None
    if not isinstance(messages, list) or not messages:
        raise SuiteError(path, line, "messages", "must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise SuiteError(path, line, f"messages[{i}]", "must be {role: system|user|assistant, content: str}")
        out.append((m["role"], m["content"]))
    if out[-1][0] != "user":
        raise SuiteError(path, line, "messages", "the last message must be from the user")
    return tuple(out)


# ---------------------------------------------------------------- files


def read_records(path: Path, problems: list[str] | None = None) -> Iterable[tuple[int, Any]]:
    """Yield (line number, raw record) from a JSONL or CSV file. A JSON syntax error names the line: it is
    raised, or, when ``problems`` is given, appended there and the line skipped (to report every bad line)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    yield lineno, json.loads(raw)
                except json.JSONDecodeError as exc:
                    error = SuiteError(str(path), lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
                    if problems is None:
                        raise error from None
                    problems.append(str(error))
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for offset, row in enumerate(reader, start=2):  # line 1 is the header
                yield offset, {k: v for k, v in row.items() if k is not None}
    else:
        raise SuiteError(str(path), None, None, f"unsupported suite file type '{suffix}' (use .jsonl or .csv)")


def load_case_file(path: Path, *, strict: bool, categories: Sequence[str] | None = None) -> list[Case]:
    if not path.is_file():
        raise SuiteError(str(path), None, None, "file not found")
    cases = [case_from_record(rec, str(path), n, strict=strict, categories=categories) for n, rec in read_records(path)]
    if not cases:
        raise SuiteError(str(path), None, None, "contains no cases")
    return cases


def _check_unique(cases: Sequence[Case], source: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cases):
        key = (c.lang, c.id)
        if key in seen:
            raise SuiteError(source, None, "id", f"duplicate id '{c.id}' in language '{c.lang}'")
        seen[key] = i


def load_suite_dir(directory: Path) -> Suite:
    """A suite folder: ``suite.yaml`` plus one ``<lang>.jsonl`` per language."""
    meta_path = directory / "suite.yaml"
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(str(meta_path), None, None, f"invalid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise SuiteError(str(meta_path), None, None, "must be a mapping")
    for key in ("name", "version", "languages", "categories"):
        if key not in meta:
            raise SuiteError(str(meta_path), None, key, "is missing")
    categories = dict(meta["categories"])
    cases: list[Case] = []
    for lang in meta["languages"]:
        file = directory / f"{lang}.jsonl"
        if not file.exists():
            continue  # a suite may be partially translated; languages() reports what exists
        for c in load_case_file(file, strict=True, categories=list(categories)):
            if c.lang != lang:
                raise SuiteError(str(file), None, "lang", f"case '{c.id}' has lang '{c.lang}' in the '{lang}' file")
            cases.append(c)
    if not cases:
        raise SuiteError(str(directory), None, None, "no <lang>.jsonl files found for the listed languages")
    _check_unique(cases, str(directory))
    return Suite(
        name=str(meta["name"]),
        version=str(meta["version"]),
        cases=tuple(cases),
        description=str(meta.get("description", "")),
        categories=categories,
        styles=dict(meta.get("styles") or {}),
        reference_language=str(meta.get("reference_language", "en")),
        smoke=tuple(meta.get("smoke") or ()),
        source=str(directory),
    )


def builtin_suites() -> dict[str, Path]:
    root = files("refuseu.suites")
    out = {}
    for entry in root.iterdir():
        if entry.is_dir() and (entry / "suite.yaml").is_file():
            out[entry.name] = Path(str(entry))
    return dict(sorted(out.items()))


# External suite loaders (e.g. the RefusEU hub dataset) register here as "name": "module:function".
SUITE_LOADERS: dict[str, str] = {
    "refuseu": "refuseu.auditor.refuseu_data:load_refuseu",
}


def load_suite(spec: str) -> Suite:
    """Resolve ``--suite``: a built-in name, a registered loader, a suite folder, or a JSONL/CSV file."""
    name, _, selection = spec.partition(":")
    builtins = builtin_suites()
    if name in builtins:
        suite = load_suite_dir(builtins[name])
        if selection == "smoke":
            wanted = set(suite.smoke)
            return suite.replace_cases(c for c in suite.cases if c.id in wanted)
        if selection:
            raise RefuseuError(f"unknown selection '{selection}' for suite '{name}' (known: smoke)")
        return suite
    if name in SUITE_LOADERS:
        from refuseu.auditor.registry import load_object

        return load_object(SUITE_LOADERS[name])(selection or None)  # type: ignore[no-any-return]
    path = Path(spec)
    if path.exists():
        from refuseu.auditor.refuseu_data import load_refuseu_path, looks_like_refuseu

        if path.is_dir() and (path / "suite.yaml").is_file():
            return load_suite_dir(path)
        if looks_like_refuseu(path):
            return load_refuseu_path(path)
    if path.is_dir():
        return _custom_suite(sorted(p for p in path.iterdir() if p.suffix.lower() in (".jsonl", ".csv")), path)
    if path.suffix.lower() in (".jsonl", ".csv"):
        return _custom_suite([path], path)
    known = ", ".join([*builtins, *SUITE_LOADERS]) or "none"
    raise RefuseuError(f"unknown suite '{spec}': not a built-in suite ({known}) and no such file or folder")


def _custom_suite(paths: list[Path], source: Path) -> Suite:
    if not paths:
        raise SuiteError(str(source), None, None, "no .jsonl or .csv files in this folder")
    cases = [c for p in paths for c in load_case_file(p, strict=False)]
    _check_unique(cases, str(source))
    return Suite(name=source.stem, version="custom", cases=tuple(cases), source=str(source))


# ---------------------------------------------------------------- selection


def select_cases(
    suite: Suite,
    *,
    langs: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Case]:
    """Filter by language and category, then take ``sample`` ids per language, stratified over
    categories. The same ids are taken in every language where they exist, so samples stay parallel."""
    available = set(suite.languages)
    if langs:
        unknown = [lang for lang in langs if lang not in available]
        if unknown:
            raise RefuseuError(
                f"--langs: unknown language code(s) {', '.join(unknown)} for suite '{suite.name}' "
                f"(it has: {', '.join(suite.languages)})"
            )
    if categories:
        have = {c.category for c in suite.cases}
        unknown = [c for c in categories if c not in have]
        if unknown:
            raise RefuseuError(f"--categories: unknown categor(ies) {', '.join(unknown)} (suite has: {', '.join(sorted(have))})")
    if sample is not None and sample < 1:
        raise RefuseuError(f"--sample must be at least 1, got {sample}")
    chosen = [
        c for c in suite.cases if (not langs or c.lang in langs) and (not categories or c.category in categories)
    ]
    if sample is None:
        return chosen
    order = _stratified_id_order(chosen, seed)
    rank = {case_id: i for i, case_id in enumerate(order)}
    out: list[Case] = []
    by_lang: dict[str, list[Case]] = {}
    for c in chosen:
        by_lang.setdefault(c.lang, []).append(c)
    for lang_cases in by_lang.values():
        out.extend(sorted(lang_cases, key=lambda c: rank[c.id])[:sample])
    return out


def _stratified_id_order(cases: Sequence[Case], seed: int) -> list[str]:
    """Round-robin over categories (in a seeded order), ids shuffled within each category."""
    rng = random.Random(seed)
    strata: dict[str, list[str]] = {}
    for c in cases:
        ids = strata.setdefault(c.category, [])
        if c.id not in ids:
            ids.append(c.id)
    names = sorted(strata)
    rng.shuffle(names)
    if BENIGN in names:  # benign first: even a small sample measures over-refusal
        names.remove(BENIGN)
        names.insert(0, BENIGN)
    for name in names:
        strata[name].sort()
        rng.shuffle(strata[name])
    order: list[str] = []
    while any(strata.values()):
        for name in names:
            if strata[name]:
                order.append(strata[name].pop(0))
    return order
