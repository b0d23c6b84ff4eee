"""The record-level parts of the report: worst failures, cross-lingual leak examples and grouped errors.

Everything else in the report comes from the summary; these need the stored answers themselves, so they
read generations and verdicts. Long answers are cut for the page (the full text stays in the store).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from refuseu.auditor.judges.base import COMPLIANCE, PARTIAL

EXAMPLES_PER_LANGUAGE = 5
LEAK_EXAMPLES_PER_LANGUAGE = 3
MAX_TEXT_CHARS = 3000  # per prompt or answer on the page; keeps a 16,800-record report well under 5 MB
MAX_ERROR_ROWS = 200  # individual error rows listed; all of them are in summary.json


def clip(text: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    if not text:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit} more characters in generations.jsonl]"


def _prompt(rec: dict[str, Any]) -> str:
    messages = rec.get("messages") or []
    return str(messages[-1]["content"]) if messages else ""


def _example(rec: dict[str, Any], verdict: dict[str, Any], leak: bool) -> dict[str, Any]:
    return {"id": rec["case_id"], "record": rec["id"], "category": rec["category"], "style": rec["style"],
            "sample": rec.get("sample", 0), "prompt": clip(_prompt(rec)), "response": clip(rec.get("response")),
            "outcome": verdict["outcome"], "harmful": verdict.get("harmful"), "reason": verdict.get("reason", ""),
            "response_lang": verdict.get("response_lang"), "leak": leak}


def worst_failures(generations: dict[str, dict[str, Any]], verdicts: dict[str, dict[str, Any]],
                   leaks: dict[str, list[str]], limit: int = EXAMPLES_PER_LANGUAGE) -> dict[str, list[dict[str, Any]]]:
    """Harmful requests the model answered, worst first, per language.

    Worst means, in order: judged harmful by a safety judge; a cross-lingual leak (the reference language
    refused the same id); a full compliance rather than a partial one; then the longer answer, since it
    gives away more. Ties keep the case id order, so the page is stable between renders.
    """
    leak_sets = {lang: set(ids) for lang, ids in leaks.items()}
    candidates: dict[str, list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for rid, rec in generations.items():
        v = verdicts.get(rid)
        if rec.get("error") is not None or v is None or rec.get("expected") != "refuse":
            continue
        if v["outcome"] not in (COMPLIANCE, PARTIAL):
            continue
        leak = rec["case_id"] in leak_sets.get(rec["lang"], ())
        key = (v.get("harmful") is True, leak, v["outcome"] == COMPLIANCE, len(rec.get("response") or ""))
        candidates[rec["lang"]].append((key, rec, v))
    out: dict[str, list[dict[str, Any]]] = {}
    for lang, items in candidates.items():
        items.sort(key=lambda t: (t[1]["case_id"], t[1].get("sample", 0)))
        items.sort(key=lambda t: t[0], reverse=True)  # stable: ties stay in case id order
        out[lang] = [_example(rec, v, leak=key[1]) for key, rec, v in items[:limit]]
    return out


def leak_examples(generations: dict[str, dict[str, Any]], verdicts: dict[str, dict[str, Any]],
                  leaks: dict[str, list[str]], reference: str,
                  limit: int = LEAK_EXAMPLES_PER_LANGUAGE) -> dict[str, list[dict[str, Any]]]:
    """For each language, a few leaked ids with the reference language's refusal beside this language's answer."""
    wanted = {(lang, cid) for lang, ids in leaks.items() for cid in ids[:limit]}
    refs = {cid for _, cid in wanted}
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in generations.values():
        key = (rec["lang"], rec["case_id"])
        if rec.get("error") is None and (key in wanted or (rec["lang"] == reference and rec["case_id"] in refs)):
            prev = by_key.get(key)
            if prev is None or rec.get("sample", 0) < prev.get("sample", 0):
                by_key[key] = rec
    out: dict[str, list[dict[str, Any]]] = {}
    for lang, ids in leaks.items():
        rows = []
        for cid in ids[:limit]:
            found, ref = by_key.get((lang, cid)), by_key.get((reference, cid))
            if found is None or ref is None:
                continue
            v = verdicts.get(found["id"]) or {"refusal": COMPLIANCE}
            rows.append({**_example(found, v, leak=True), "reference_prompt": clip(_prompt(ref)),
                         "reference_response": clip(ref.get("response"))})
        if rows:
            out[lang] = rows
    return out


def error_groups(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors grouped by message, most frequent first, with the languages and a few ids they hit."""
    groups: dict[str, dict[str, Any]] = {}
    for e in errors:
        message = str(e.get("error"))
        g = groups.setdefault(message, {"error": message, "count": 0, "langs": {}, "ids": []})
        g["count"] += 1
        g["langs"][e["lang"]] = g["langs"].get(e["lang"], 0) + 1
        if len(g["ids"]) < 5:
            g["ids"].append(e["case_id"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["error"]))
