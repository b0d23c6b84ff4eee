"""The runner's logic with the fake backend (unit tests; the end-to-end tests use real models)."""

from __future__ import annotations

import asyncio
import json

from refuseu.auditor.backends.fake import FakeBackend
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.runner import run_audit
from refuseu.auditor.store import RunStore


def config(tmp_path, **kw) -> AuditConfig:
    base = dict(model="fake:refuse=en+de", backend="fake", suite="core:smoke", langs=["en", "de", "pl"],
                out=str(tmp_path / "run"), quiet=True)
    base.update(kw)
    return AuditConfig(**base)


def test_run_writes_store_and_resumes(tmp_path):
    cfg = config(tmp_path)
    summary = asyncio.run(run_audit(cfg))
    store = RunStore(cfg.out)
    for name in ("manifest.json", "generations.jsonl", "verdicts.jsonl", "summary.json", "report.html"):
        assert (store.dir / name).is_file(), name
    lines = (store.dir / "generations.jsonl").read_text().splitlines()
    assert len(lines) == summary["overall"]["n_records"] > 0
    assert summary["by_language"]["en"]["refusal_rate"] == 1.0
    assert summary["by_language"]["pl"]["refusal_rate"] == 0.0
    assert summary["by_language"]["pl"]["leaks"] == summary["by_language"]["pl"]["n"]
    assert not summary["gate"]["passed"]
    # resume: nothing regenerated, the backend is not even built
    backend = FakeBackend("fake")
    asyncio.run(run_audit(config(tmp_path), backend=backend))
    assert backend.calls == 0
    assert (store.dir / "generations.jsonl").read_text().splitlines() == lines
    manifest = json.loads((store.dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["suite"]["name"] == "core"


def test_errors_are_recorded_never_refusals_and_retried(tmp_path):
    cfg = config(tmp_path, model="fake:error=pl")
    summary = asyncio.run(run_audit(cfg))
    pl = summary["by_language"]["pl"]
    assert pl["errors"] > 0 and pl["n"] == 0 and pl["refusal_rate"] is None
    assert summary["overall"]["errors"] == pl["errors"] == len(summary["errors"])
    verdict_ids = set(RunStore(cfg.out).verdicts())
    assert not any(e["id"] in verdict_ids for e in summary["errors"])  # errors are never judged
    # a rerun with a healthy backend retries only the errored records
    healthy = FakeBackend("fake")
    summary = asyncio.run(run_audit(config(tmp_path, model="fake:error=pl"), backend=healthy))
    assert summary["overall"]["errors"] == 0
    assert healthy.calls > 0 and summary["by_language"]["pl"]["n"] > 0


def test_changed_config_refuses_to_mix_runs(tmp_path):
    import pytest

    from refuseu.auditor.errors import RefuseuError

    asyncio.run(run_audit(config(tmp_path)))
    with pytest.raises(RefuseuError, match="different decoding parameters"):
        asyncio.run(run_audit(config(tmp_path, max_new_tokens=12)))


def test_record_ids_are_stable(tmp_path):
    a = asyncio.run(run_audit(config(tmp_path, out=str(tmp_path / "a"))))
    b = asyncio.run(run_audit(config(tmp_path, out=str(tmp_path / "b"))))
    ids_a = set(RunStore(tmp_path / "a").generations())
    ids_b = set(RunStore(tmp_path / "b").generations())
    assert ids_a == ids_b and a["overall"]["n"] == b["overall"]["n"]


def test_case_of_record_keeps_the_case_id(tmp_path):
    from refuseu.auditor.runner import case_of_record

    asyncio.run(run_audit(config(tmp_path)))
    rec = next(iter(RunStore(tmp_path / "run").generations().values()))
    case = case_of_record(rec)
    assert case.id == rec["case_id"] != rec["id"] and case.lang == rec["lang"]
