"""Suite files: validating one raw record into a Case, reading JSONL/CSV files and suite folders
(``suite.yaml`` + ``<lang>.jsonl``). Every bad line is reported as ``file:line: field 'x': problem``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from refuseu.auditor.data.cases import BENIGN, CUSTOM_DEFAULTS, EXPECTED, HARM_CATEGORIES, ROLES, Case, Suite
from refuseu.auditor.data.languages import is_known_language, is_language_code
from refuseu.auditor.errors import SuiteError
from refuseu.auditor.textfiles import iter_lines, read_text, yaml_error


def case_from_record(
    rec: Any, path: str, line: int, *, strict: bool, categories: Sequence[str] | None = None,
    declared: Sequence[str] = ()
) -> Case:
    """Validate one raw record (a JSON object or CSV row) into a Case, or raise SuiteError. ``declared``: language
    codes a suite folder declares beyond the ones refuseu knows (suite.yaml ``language_names``)."""
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
    if not is_known_language(lang) and lang not in declared:
        raise SuiteError(path, line, "lang", f"'{lang}' is not a language refuseu knows; a suite folder can declare it "
                                             "in suite.yaml (languages and language_names, docs/suites.md)")

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


def read_records(path: Path, problems: list[str] | None = None) -> Iterable[tuple[int, Any]]:
    """Yield (line number, raw record) from a JSONL or CSV file. A JSON syntax error names the line: it is
    raised, or, when ``problems`` is given, appended there and the line skipped (to report every bad line)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for lineno, raw in iter_lines(path):
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
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        try:
            for row in reader:  # the reader's line number is the file's (quoted cells may span lines)
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
        except csv.Error as exc:
            raise SuiteError(str(path), reader.line_num, None, f"invalid CSV: {exc}") from None
    else:
        raise SuiteError(str(path), None, None, f"unsupported suite file type '{suffix}' (use .jsonl or .csv)")


def load_case_file(path: Path, *, strict: bool, categories: Sequence[str] | None = None,
                   declared: Sequence[str] = ()) -> list[Case]:
    if not path.is_file():
        raise SuiteError(str(path), None, None, "file not found")
    cases = [case_from_record(rec, str(path), n, strict=strict, categories=categories, declared=declared)
             for n, rec in read_records(path)]
    if not cases:
        raise SuiteError(str(path), None, None, "contains no cases")
    return cases


def check_unique(cases: Sequence[Case], source: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cases):
        key = (c.lang, c.id)
        if key in seen:
            raise SuiteError(source, None, "id", f"duplicate id '{c.id}' in language '{c.lang}'")
        seen[key] = i


def _str_mapping(value: Any, path: Path, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()):
        raise SuiteError(str(path), None, field, "must be a mapping of code: name")
    return {k: str(v) for k, v in value.items()}


def load_suite_dir(directory: Path) -> Suite:
    """A suite folder: ``suite.yaml`` plus one ``<lang>.jsonl`` per language."""
    meta_path = directory / "suite.yaml"
    try:
        meta = yaml.safe_load(read_text(meta_path)) or {}
    except yaml.YAMLError as exc:
        raise yaml_error(meta_path, exc) from None
    if not isinstance(meta, dict):
        raise SuiteError(str(meta_path), None, None, "must be a mapping")
    for key in ("name", "version", "languages", "categories"):
        if key not in meta:
            raise SuiteError(str(meta_path), None, key, "is missing")
    categories = _str_mapping(meta["categories"], meta_path, "categories")
    names = _str_mapping(meta.get("language_names") or {}, meta_path, "language_names")
    languages = meta["languages"]
    if not isinstance(languages, list) or not all(isinstance(x, str) and is_language_code(x) for x in languages):
        raise SuiteError(str(meta_path), None, "languages", "must be a list of two-letter language codes")
    unknown = [lang for lang in languages if not is_known_language(lang) and lang not in names]
    if unknown:
        raise SuiteError(str(meta_path), None, "languages", f"'{unknown[0]}' is not a language refuseu knows: declare "
                                                             f"it under language_names (e.g. {unknown[0]}: Its name)")
    cases: list[Case] = []
    for lang in languages:
        file = directory / f"{lang}.jsonl"
        if not file.exists():
            continue  # a suite may be partially translated; languages() reports what exists
        for c in load_case_file(file, strict=True, categories=list(categories), declared=list(names)):
            if c.lang != lang:
                raise SuiteError(str(file), None, "lang", f"case '{c.id}' has lang '{c.lang}' in the '{lang}' file")
            cases.append(c)
    if not cases:
        raise SuiteError(str(directory), None, None, "no <lang>.jsonl files found for the listed languages")
    check_unique(cases, str(directory))
    for key in ("name", "version"):
        if not isinstance(meta[key], (str, int, float)) or isinstance(meta[key], bool):
            raise SuiteError(str(meta_path), None, key, "must be a string")
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


