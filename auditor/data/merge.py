"""``refuseu-audit merge RUN_DIR... --out DIR``: join runs of one audit (``--shard K/N`` jobs of a CI matrix,
or parts run with different API keys) into one run directory, then render one summary and report.

Runs are compatible when they audited the same model on the same backend with the same decoding, suite
content, judge and gate. A record id present in several runs must hold the same answer (an error in one run
and an answer in another keeps the answer, as a resumed run would). The merged manifest says where each part
came from; the summary is computed from the merged records alone, so it equals that of one unsharded run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.store import RunStore

SAME = (("model", "model"), ("backend", "backend/model spec"), ("decoding", "decoding parameters"),
        ("judge", "primary judge"), ("gate", "gate"))
SAME_SELECTION = ("sample", "seed", "num_samples")
# What decides an answer or a verdict; timestamps and latencies may differ between identical records.
GENERATION_KEYS = ("response", "error", "case_id", "lang", "sample")
VERDICT_KEYS = ("refusal", "harmful", "response_lang")


MERGE_NEEDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "suite": ((dict,), True), "selection": ((dict,), True), "n_requests": ((int,), True)}


def check_compatible(manifests: list[tuple[RunStore, dict[str, Any]]]) -> None:
    from refuseu.auditor.store import check_record

    for store, m in manifests:  # what merging reads, beyond what every manifest may hold
        check_record(m, MERGE_NEEDS, str(store.manifest_path))
        check_record(m["suite"], {"hash": ((str,), True)}, str(store.manifest_path), prefix="suite.")
    first_store, first = manifests[0]
    for store, m in manifests[1:]:
        for key, label in SAME:
            if m.get(key) != first.get(key):
                raise RefuseuError(f"cannot merge {store.dir} with {first_store.dir}: different {label} "
                                   f"({m.get(key)!r} vs {first.get(key)!r})")
        if m.get("suite", {}).get("full_hash") != first.get("suite", {}).get("full_hash"):
            raise RefuseuError(f"cannot merge {store.dir} with {first_store.dir}: they audited different suite content")
        for key in SAME_SELECTION:
            if m.get("selection", {}).get(key) != first.get("selection", {}).get(key):
                raise RefuseuError(f"cannot merge {store.dir} with {first_store.dir}: different --{key.replace('_', '-')} "
                                   f"({m['selection'].get(key)!r} vs {first['selection'].get(key)!r})")


def shard_plan(manifests: list[tuple[RunStore, dict[str, Any]]], allow_partial: bool) -> str | None:
    """For shard runs: check they come from one split and, unless allowed, cover it. Returns the hash of the
    whole (unsharded) selection when every shard is there."""
    from refuseu.auditor.data.shard import parse_shard

    shards = [(store, m.get("selection", {}).get("shard")) for store, m in manifests]
    if not any(s for _, s in shards):
        return None
    plain = [str(store.dir) for store, s in shards if not s]
    if plain:
        raise RefuseuError(f"cannot merge shard runs with unsharded runs ({', '.join(plain)})")
    parsed = [(store, parse_shard(s)) for store, s in shards if s]
    counts = {sh.count for _, sh in parsed}
    if len(counts) > 1:
        raise RefuseuError(f"the runs come from different splits (--shard .../{' vs .../'.join(map(str, sorted(counts)))})")
    selections = {repr(sorted((k, v) for k, v in m["selection"].items() if k != "shard")) for _, m in manifests}
    parents = {m.get("suite", {}).get("unsharded_hash") for _, m in manifests}
    if len(selections) > 1 or len(parents) > 1:
        raise RefuseuError("the shard runs split different selections (--langs/--categories/--sample differ)")
    count = counts.pop()
    missing = sorted(set(range(1, count + 1)) - {sh.index for _, sh in parsed})
    if missing and not allow_partial:
        raise RefuseuError(f"shard(s) {', '.join(f'{k}/{count}' for k in missing)} missing; "
                           "pass them too, or --allow-partial to merge what is there")
    return None if missing else parents.pop()


def merge_records(sources: list[tuple[RunStore, dict[str, dict[str, Any]]]], keys: tuple[str, ...],
                  what: str, hint: str = "these runs are not parts of one audit") -> dict[str, dict[str, Any]]:
    """Union of id -> record. The same id twice must agree on ``keys``; an answer beats an error."""
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for store, records in sources:
        for rid, rec in records.items():
            old = merged.get(rid)
            if old is None or (old.get("error") is not None and rec.get("error") is None):
                merged[rid], origin[rid] = rec, store.dir
            elif rec.get("error") is None and any(old.get(k) != rec.get(k) for k in keys):
                raise RefuseuError(f"{store.dir}/{what}: record {rid} differs from the one in {origin[rid]}; {hint}")
    return merged


def merged_manifest(manifests: list[tuple[RunStore, dict[str, Any]]], out: Path, unsharded_hash: str | None,
                    n_records: int) -> dict[str, Any]:
    from refuseu.auditor.data.languages import language_order
    from refuseu.auditor.store import now

    first = manifests[0][1]
    manifest = {k: v for k, v in first.items() if k not in ("backend_info",)}
    sel = dict(first.get("selection", {}))
    sel.pop("shard", None)
    for key in ("langs", "categories"):  # [] means "all": any part with all makes the union all
        parts = [m.get("selection", {}).get(key) or [] for _, m in manifests]
        sel[key] = [] if any(not p for p in parts) else sorted({x for p in parts for x in p})
    by_hash = {m["suite"]["hash"]: m for _, m in manifests}  # identical parts (same hash) count once
    langs = {lang for m in by_hash.values() for lang in m["suite"].get("languages", [])}
    suite = dict(first["suite"])
    suite.pop("unsharded_hash", None)
    suite.update(
        n_cases=sum(m["suite"].get("n_cases", 0) for m in by_hash.values()),
        languages=sorted(langs, key=language_order),
        # A complete shard set is exactly the unsharded selection, so it gets that selection's hash.
        hash=unsharded_hash or hashlib.sha256("\n".join(sorted(by_hash)).encode()).hexdigest(),
    )
    config = dict(first.get("config", {}))
    config.update(shard=None, out=str(out), langs=sel["langs"], categories=sel["categories"])
    statuses = {m.get("status") for _, m in manifests}
    manifest.update(
        selection=sel, suite=suite, config=config,
        n_requests=sum(m.get("n_requests", 0) for m in by_hash.values()),
        status="complete" if statuses == {"complete"} else "partial",
        created=min(m.get("created") or "" for _, m in manifests) or now(),
        updated=now(),
        merged_from=[{"dir": str(s.dir), "shard": m.get("selection", {}).get("shard"), "status": m.get("status"),
                      "suite_hash": m["suite"]["hash"], "created": m.get("created"),
                      "backend_info": m.get("backend_info"), "versions": m.get("versions")} for s, m in manifests],
        n_generations=n_records,
    )
    if first.get("backend_info"):
        manifest["backend_info"] = first["backend_info"]
    return manifest


def merge_runs(run_dirs: Sequence[str], out: str, *, allow_partial: bool = False) -> RunStore:
    """Write the merged run directory (manifest, generations, every judge's verdicts). Rendering is separate."""
    if not run_dirs:
        raise RefuseuError("merge: give at least one RUN_DIR")
    target = RunStore(out)
    inputs = [RunStore(d) for d in run_dirs]
    resolved = {s.dir.resolve() for s in inputs}
    if len(resolved) != len(inputs):
        raise RefuseuError("merge: a RUN_DIR is given twice")
    if target.dir.resolve() in resolved:
        raise RefuseuError(f"--out {out} is one of the runs to merge; give a new directory")
    if target.exists() or (target.dir.exists() and any(p.name != ".lock" for p in target.dir.iterdir())):
        raise RefuseuError(f"--out {out} already exists and is not empty; give a new directory")
    manifests = [(s, s.read_manifest()) for s in inputs]
    check_compatible(manifests)
    unsharded_hash = shard_plan(manifests, allow_partial)
    generations = merge_records([(s, s.generations()) for s in inputs], GENERATION_KEYS, "generations.jsonl")
    judges: list[str] = []
    for s in inputs:
        judges += [j for j in s.judges_present() if j not in judges]
    verdicts = {j: merge_records([(s, s.verdicts(j)) for s in inputs], VERDICT_KEYS, f"verdicts ({j})",
                                 f"judge '{j}' changed between the runs: re-judge them first (refuseu-audit judge "
                                 f"RUN_DIR --judge {j} --force)") for j in judges}

    with target.locked():
        target.write_manifest(merged_manifest(manifests, target.dir, unsharded_hash, len(generations)))
        target.append_generations(list(generations.values()))
        for judge, records in verdicts.items():
            # Only verdicts of merged answers: a verdict on an error that a later answer replaced is stale.
            keep = [v for rid, v in records.items() if rid in generations and generations[rid].get("error") is None]
            target.append_verdicts(keep, judge)
    return target
