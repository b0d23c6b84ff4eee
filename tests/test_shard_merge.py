"""--shard K/N and `refuseu-audit merge`: shards of one audit, merged, give the summary of one unsharded run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from refuseu.auditor.cli import main
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.data.merge import merge_runs
from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.data.selection import select_cases
from refuseu.auditor.data.shard import Shard, apply_shard, parse_shard
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.runner import run_audit
from refuseu.auditor.store import RunStore

LANGS = ["en", "de", "pl"]


def comparable(summary: dict) -> dict:
    """A summary without what legitimately differs between two runs of one audit: when they ran."""
    out = json.loads(json.dumps(summary))
    out["run"].pop("created")
    out["run"].pop("updated")
    out["errors"] = sorted(out["errors"], key=lambda e: e["id"])
    return out


def audit(out: Path, **kw) -> dict:
    base = dict(model="fake:refuse=en+de", backend="fake", suite="core:smoke", langs=LANGS, out=str(out), quiet=True)
    base.update(kw)
    return asyncio.run(run_audit(AuditConfig(**base)))


def test_parse_shard():
    assert parse_shard("2/8") == Shard(2, 8) and str(parse_shard(" 1 / 3 ")) == "1/3"
    for bad in ("0/3", "4/3", "1/0", "a/b", "3", "1/3/4"):
        with pytest.raises(RefuseuError, match="--shard"):
            parse_shard(bad)


def test_shards_partition_ids_and_keep_languages_together():
    cases = select_cases(load_suite("core"), langs=LANGS)
    parts = [apply_shard(cases, Shard(k, 3)) for k in (1, 2, 3)]
    keys = [{(c.id, c.lang) for c in p} for p in parts]
    assert set().union(*keys) == {(c.id, c.lang) for c in cases}
    assert sum(len(k) for k in keys) == len(cases)  # disjoint
    ids = [{c.id for c in p} for p in parts]
    assert max(map(len, ids)) - min(map(len, ids)) <= 1  # balanced to one id
    for p in parts:  # every language of an id sits in its shard, so leaks stay computable per shard
        by_id: dict[str, set[str]] = {}
        for c in p:
            by_id.setdefault(c.id, set()).add(c.lang)
        assert all(langs == set(LANGS) for langs in by_id.values())
    assert [c.id for c in apply_shard(cases, Shard(2, 3))] == [c.id for c in parts[1]]  # deterministic


def test_three_shards_merged_equal_one_run(tmp_path):
    full = audit(tmp_path / "full")
    for k in (1, 2, 3):
        audit(tmp_path / f"s{k}", shard=f"{k}/3")
    manifest = json.loads((tmp_path / "s2" / "manifest.json").read_text())
    assert manifest["selection"]["shard"] == "2/3"
    code = main(["merge", *(str(tmp_path / f"s{k}") for k in (3, 1, 2)), "--out", str(tmp_path / "merged"), "--quiet"])
    assert code == 1  # the fake model leaks in pl, so the gate fails: same exit as the unsharded run
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert comparable(merged) == comparable(full)
    assert merged["overall"]["n_records"] == full["overall"]["n_records"] > 0
    assert merged["by_language"]["pl"]["leaks"] == full["by_language"]["pl"]["leaks"] > 0
    m = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    f = json.loads((tmp_path / "full" / "manifest.json").read_text())
    assert m["suite"]["hash"] == f["suite"]["hash"] and m["suite"]["n_cases"] == f["suite"]["n_cases"]
    assert "shard" not in m["selection"] and len(m["merged_from"]) == 3 and m["status"] == "complete"
    for name in ("report.html", "junit.xml", "summary.md", "verdicts.jsonl"):
        assert (tmp_path / "merged" / name).is_file(), name
    # The merged directory is an ordinary run of the unsharded command: resuming it generates nothing.
    from refuseu.auditor.backends.fake import FakeBackend

    idle = FakeBackend("fake:refuse=en+de")
    cfg = AuditConfig(model="fake:refuse=en+de", backend="fake", suite="core:smoke", langs=LANGS,
                      out=str(tmp_path / "merged"), quiet=True)
    again = asyncio.run(run_audit(cfg, backend=idle))
    assert idle.calls == 0 and comparable(again) == comparable(full)


def test_shard_run_resumes_but_is_not_another_shard(tmp_path):
    audit(tmp_path / "s1", shard="1/2")
    audit(tmp_path / "s1", shard="1/2")  # resume: fine
    with pytest.raises(RefuseuError, match="case selection"):
        audit(tmp_path / "s1", shard="2/2")


def test_merge_refuses_incompatible_or_incomplete_runs(tmp_path, capsys):
    audit(tmp_path / "a", shard="1/2")
    audit(tmp_path / "b", shard="2/2", max_new_tokens=5)
    with pytest.raises(RefuseuError, match="different decoding"):
        merge_runs([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "m1"))
    with pytest.raises(RefuseuError, match=r"shard\(s\) 2/2 missing"):
        merge_runs([str(tmp_path / "a")], str(tmp_path / "m2"))
    partial = merge_runs([str(tmp_path / "a")], str(tmp_path / "m3"), allow_partial=True)
    assert json.loads(partial.manifest_path.read_text())["suite"]["hash"] != ""
    with pytest.raises(RefuseuError, match="already exists"):
        merge_runs([str(tmp_path / "a")], str(tmp_path / "m3"), allow_partial=True)
    # through the CLI: one line, exit 2
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refuseu-audit merge: error: cannot merge")


def test_merge_rejects_conflicting_records(tmp_path):
    audit(tmp_path / "a", langs=["en", "de"])
    audit(tmp_path / "b", langs=["en", "de"], model="fake:refuse=en+de")  # identical records: fine
    store = merge_runs([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "same"))
    a_records = {rid: r["response"] for rid, r in RunStore(tmp_path / "a").generations().items()}
    assert {rid: r["response"] for rid, r in store.generations().items()} == a_records
    gen = tmp_path / "b" / "generations.jsonl"
    lines = gen.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["response"] = "something else"
    gen.write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    with pytest.raises(RefuseuError, match=f"record {rec['id']} differs"):
        merge_runs([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "conflict"))


def test_merge_by_language_parts(tmp_path):
    """Parts split by --langs (e.g. one API key per language group) merge like shards."""
    full = audit(tmp_path / "full")
    audit(tmp_path / "p1", langs=["en", "de"])
    audit(tmp_path / "p2", langs=["pl"])
    store = merge_runs([str(tmp_path / "p1"), str(tmp_path / "p2")], str(tmp_path / "m"))
    from refuseu.auditor.runner import finalize

    merged = finalize(store)
    a, b = comparable(merged), comparable(full)
    a["run"].pop("suite"), b["run"].pop("suite")  # the parts' selections hash differently from the whole one
    assert a == b


def test_merge_with_tiny_hf_model(tmp_path, tiny_model_dir):
    """The same equality with a real (tiny) transformers model. batch_size 1 so batch composition cannot
    change greedy decoding between the sharded and unsharded runs."""
    kw = dict(model=str(tiny_model_dir), backend="hf", suite="core", sample=5, langs=["en", "de"], max_new_tokens=6,
              batch_size=1, device="cpu")
    full = audit(tmp_path / "full", **kw)
    for k in (1, 2):
        audit(tmp_path / f"s{k}", shard=f"{k}/2", **kw)
    main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "merged"), "--quiet"])
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert comparable(merged) == comparable(full)
    assert merged["overall"]["n_records"] == 10
