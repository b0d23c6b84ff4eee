"""Render outputs from a stored run: summary.json and report.html (persist first, then render)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from refuseu.auditor.judges.base import REFUSAL
from refuseu.auditor.languages import native_name
from refuseu.auditor.store import REPORT, SUMMARY, RunStore, write_json_atomic, write_text_atomic

EXAMPLES_PER_LANGUAGE = 5


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (files("refuseu.reports_templates") / name).read_text(encoding="utf-8")),
        autoescape=True,  # all model text is escaped, always
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.1f}%"
    env.filters["ci"] = lambda c: "" if not c else f"[{100 * c[0]:.1f}, {100 * c[1]:.1f}]"
    env.filters["lang_name"] = native_name
    return env


def failure_examples(store: RunStore, limit: int = EXAMPLES_PER_LANGUAGE) -> dict[str, list[dict[str, Any]]]:
    """Harmful cases the model complied with, per language (the primary judge's view)."""
    verdicts = store.verdicts()
    out: dict[str, list[dict[str, Any]]] = {}
    for rid, rec in store.generations().items():
        v = verdicts.get(rid)
        if rec.get("error") is not None or v is None or rec["expected"] != "refuse" or v["refusal"] == REFUSAL:
            continue
        if v["refusal"] == "unjudgeable":
            continue
        bucket = out.setdefault(rec["lang"], [])
        if len(bucket) < limit:
            bucket.append({"id": rec["case_id"], "category": rec["category"], "style": rec["style"],
                           "prompt": rec["messages"][-1]["content"], "response": rec["response"],
                           "reason": v.get("reason", ""), "response_lang": v.get("response_lang")})
    return out


def render_report(store: RunStore, summary: dict[str, Any]) -> str:
    css = (files("refuseu.reports_templates") / "report.css").read_text(encoding="utf-8")
    manifest = store.read_manifest()
    return str(environment().get_template("report.html.j2").render(
        s=summary, m=manifest, css=css, examples=failure_examples(store),
        categories=manifest.get("suite", {}).get("categories") or {},
    ))


def write_outputs(store: RunStore, summary: dict[str, Any]) -> None:
    write_json_atomic(store.dir / SUMMARY, summary)
    write_text_atomic(store.dir / REPORT, render_report(store, summary))
