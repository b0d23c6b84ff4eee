"""The audit pipeline: suite -> requests (stable ids) -> backend -> generations.jsonl -> judges ->
verdicts.jsonl -> summary.json -> report. Each stage reads and writes the run directory only."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.base import Backend, DecodingParams, Generation, GenRequest, record_id
from refuseu.auditor.backends.service import GenerationService
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.data.cases import Case, Suite
from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.data.selection import select_cases
from refuseu.auditor.errors import RefuseuError, note_run_dir
from refuseu.auditor.judges.base import Judge, JudgeItem
from refuseu.auditor.models.resolve import model_slug
from refuseu.auditor.progress import Progress
from refuseu.auditor.reporting.gates import GateConfig
from refuseu.auditor.store import FORMAT_VERSION, RunStore, now


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("refuseu", "torch", "transformers", "lingua-language-detector", "httpx", "vllm", "trl", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def backend_spec(config: AuditConfig) -> dict[str, Any]:
    """What identifies the audited model in record ids: backend, model and endpoint. No secrets."""
    spec: dict[str, Any] = {"backend": config.backend_name, "model": config.model}
    if config.base_url:
        spec["base_url"] = config.base_url
    if config.request_template:  # the body shapes the answer: a changed template must not reuse old records
        import hashlib

        try:
            body = Path(config.request_template).read_bytes()
        except OSError:
            raise RefuseuError(f"--request-template: file not found: {config.request_template}") from None
        spec["request_template_sha256"] = hashlib.sha256(body).hexdigest()[:16]
    if config.response_path:
        spec["response_path"] = config.response_path
    return spec


def open_service(config: AuditConfig) -> GenerationService:
    """The audited model behind the generation service, with its backend's typed options."""
    from refuseu.auditor.backends import backend_class, options_from
    from refuseu.auditor.options import parse_pairs

    cls = backend_class(config.backend_name)
    return GenerationService(cls(config.model, options_from(config, cls, parse_pairs(config.backend_option,
                                                                                       "--backend-option"))))


def build_requests(cases: Sequence[Case], spec: dict[str, Any], params: DecodingParams, num_samples: int) -> list[GenRequest]:
    return [
        GenRequest(record_id(c.id, c.lang, c.messages, spec, params, s), c.id, c.lang, c.messages, params, s, c.expected)
        for c in cases
        for s in range(num_samples)
    ]


def generation_record(case: Case, req: GenRequest, gen: Generation) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": req.id,
        "case_id": case.id,
        "lang": case.lang,
        "category": case.category,
        "style": case.style,
        "expected": case.expected,
        "sample": req.sample_index,
        "messages": case.chat(),
        "response": gen.text,
        "error": gen.error,
        "finish_reason": gen.finish_reason,
        "n_tokens": gen.n_tokens,
        "latency_s": None if gen.latency_s is None else round(gen.latency_s, 4),
        "created": now(),
    }
    if case.reference is not None:
        rec["reference"] = case.reference
    if gen.extra:
        rec["extra"] = gen.extra
    return rec


def case_of_record(rec: dict[str, Any]) -> Case:
    """The case a generation record answers (the record's own id is the generation id, not the case id)."""
    return Case.from_dict({**rec, "id": rec["case_id"]})


def default_out(config: AuditConfig) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{model_slug(config.model)}-{stamp}")


def check_resume(store: RunStore, manifest: dict[str, Any]) -> None:
    """A run directory belongs to one model, backend, decoding setup and case selection."""
    old = store.read_manifest()
    for key, label in (("backend", "backend/model"), ("decoding", "decoding parameters"), ("selection", "case selection")):
        if old.get(key) != manifest.get(key):
            raise RefuseuError(
                f"{store.dir} already holds a run with different {label} "
                f"({old.get(key)} vs {manifest.get(key)}); use another --out or the same flags"
            )
    if old.get("suite", {}).get("hash") != manifest["suite"]["hash"]:
        raise RefuseuError(f"{store.dir} already holds a run of a different suite content; use another --out")


async def judge_store(store: RunStore, judge: Judge, progress: Progress | None = None,
                      only: set[str] | None = None) -> int:
    """Judge every answered record (of ``only``, when given) that this judge has not judged yet. Returns how
    many were judged."""
    generations = store.generations()
    existing = store.verdicts(judge.id)
    todo = [rec for rid, rec in generations.items()
            if rec.get("error") is None and rid not in existing and (only is None or rid in only)]
    size = max(1, judge.batch_size)
    for i in range(0, len(todo), size):
        chunk = todo[i:i + size]
        items = [JudgeItem(rec["id"], case_of_record(rec), rec["response"] or "") for rec in chunk]
        verdicts = await judge.judge(items)
        if len(verdicts) != len(items):
            raise RefuseuError(f"judge '{judge.id}' returned {len(verdicts)} verdicts for {len(items)} answers")
        store.append_verdicts([v.to_dict() for v in verdicts], judge.id)
        if progress:
            progress(f"judge:{judge.id}", i + len(chunk), len(todo))
    return len(todo)


def finalize(store: RunStore, *, reference: str | None = None, gate: GateConfig | None = None) -> dict[str, Any]:
    """summary.json and every rendered output, from the store alone."""
    from refuseu.auditor.reporting.outputs import write_outputs
    from refuseu.auditor.reporting.scoring import load_records, summarize_records

    with store.locked():
        records = load_records(store)
        summary = summarize_records(records, reference=reference, gate=gate)
        write_outputs(store, summary, records.generations, records.verdicts)  # the records already loaded
    return summary


@dataclass
class AuditPlan:
    """Everything decided before a model is loaded: the cases, the run directory and its manifest, and the
    requests with their stable ids."""

    suite: Suite
    cases: list[Case]
    store: RunStore
    manifest: dict[str, Any]
    requests: list[GenRequest]

    def pending(self) -> list[tuple[Case, GenRequest]]:
        """Requests with no stored answer yet, or whose stored answer is an error (a rerun retries those)."""
        by_id = {(c.id, c.lang): c for c in self.cases}
        stored = self.store.generations()
        return [(by_id[(r.case_id, r.lang)], r) for r in self.requests
                if r.id not in stored or stored[r.id].get("error") is not None]


def plan_audit(config: AuditConfig) -> AuditPlan:
    """Select the cases, build the requests and the manifest, and check a resumed run is the same run."""
    gate = GateConfig.from_file(config.gate) if config.gate else GateConfig()
    suite = load_suite(config.suite)
    cases = select_cases(suite, langs=config.langs or None, categories=config.categories or None,
                         sample=config.sample, seed=config.seed)
    if not cases:
        raise RefuseuError("the selection is empty: no cases match --langs/--categories")
    selected_langs = {c.lang for c in cases}
    reference = config.reference_language
    if len(selected_langs) > 1 and reference not in selected_langs and config.reference is None:
        # no --reference and no English in the selection: the first audited language (in the usual order) is the
        # reference, and the manifest says so
        from refuseu.auditor.data.languages import language_order

        config.reference = reference = min(selected_langs, key=language_order)
    if len(selected_langs) > 1 and reference not in selected_langs:
        raise RefuseuError(f"--reference {reference} is not among the audited languages "
                           f"({', '.join(sorted(selected_langs))}); add it to --langs or choose another --reference")
    unsharded_hash = None
    if config.shard is not None:  # after selection, so every shard splits the same --sample
        from refuseu.auditor.data.shard import apply_shard, parse_shard

        unsharded_hash = suite.replace_cases(cases).content_hash
        shard = parse_shard(config.shard)
        config.shard = str(shard)  # canonical "K/N" in the manifest, so " 2 / 3" resumes "2/3"
        cases = apply_shard(cases, shard)
        if not cases:
            raise RefuseuError(f"--shard {config.shard}: this shard is empty (the selection has fewer ids than shards)")
    config.out = config.out or default_out(config)
    store = RunStore(config.out)
    spec = backend_spec(config)
    params = config.decoding()
    requests = build_requests(cases, spec, params, config.num_samples)
    selected = suite.replace_cases(cases)
    manifest = {
        "format_version": FORMAT_VERSION,
        "tool": "refuseu-audit",
        "model": config.model,
        "backend": spec,
        "decoding": params.to_dict(),
        "selection": {"langs": sorted(config.langs), "categories": sorted(config.categories), "sample": config.sample,
                      "seed": config.seed, "num_samples": config.num_samples,
                      **({"shard": config.shard} if config.shard else {})},
        "suite": {"name": suite.name, "version": suite.version, "hash": selected.content_hash,
                  "full_hash": suite.content_hash, "source": suite.source, "n_cases": len(cases),
                  "languages": selected.languages, "categories": suite.categories, "styles": suite.styles,
                  **({"unsharded_hash": unsharded_hash} if unsharded_hash else {})},
        "judge": config.judge[0],
        "judges": config.judge,
        "gate": gate.to_dict(),
        "config": config.to_manifest(),
        "n_requests": len(requests),
        "versions": package_versions(),
        "created": now(),
    }
    if store.exists():
        check_resume(store, manifest)
        manifest["created"] = store.read_manifest().get("created", manifest["created"])
    return AuditPlan(suite, cases, store, manifest, requests)


async def generate_into(store: RunStore, service: GenerationService, pending: list[tuple[Case, GenRequest]],
                        progress: Progress | None = None) -> None:
    """Generate the pending requests, appending each answer to the store as soon as it exists."""
    requests = [r for _, r in pending]

    def keep(part: list[tuple[int, Generation]]) -> None:
        store.append_generations([generation_record(pending[i][0], pending[i][1], g) for i, g in part])

    await service.stream(requests, keep, progress)


async def run_audit(config: AuditConfig, progress: Progress | None = None, *, backend: Backend | None = None,
                    service: GenerationService | None = None) -> dict[str, Any]:
    """The whole audit. Returns the summary; the caller maps it to an exit code.

    ``backend``: a backend to use instead of building one from the config (the run closes it). ``service``: a
    generation service lent by the caller, which stays open after the run (refuseu-fix reuses one model)."""
    from refuseu.auditor.judges import build_judges

    plan = plan_audit(config)
    # Every judge is built before anything is generated, so an unknown judge or option fails at once.
    names = [*config.judge, *([config.check_judge] if config.check_judge else [])]
    built = build_judges(names, config.judge_option)
    judges, check = built[:len(config.judge)], (built[-1] if config.check_judge else None)
    if check is not None and check.id in {j.id for j in judges}:
        raise RefuseuError(f"--check-judge {config.check_judge}: give a judge other than the run's own "
                           f"({', '.join(config.judge)}), or another judge_id")
    store = plan.store
    note_run_dir(store.dir)
    with store.locked():
        summary = await _run_locked(config, plan, judges, progress, backend, service)
        if check is None:
            return summary
        await run_check(store, check, config.check_sample, config.seed, progress)
        return finalize(store, reference=config.reference_language)


async def _run_locked(config: AuditConfig, plan: AuditPlan, judges: list[Judge], progress: Progress | None,
                      backend: Backend | None, service: GenerationService | None) -> dict[str, Any]:
    manifest, store = plan.manifest, plan.store
    if store.exists():  # another process may have finished this run while we planned
        check_resume(store, manifest)
    # The primary judge's measured error per language, so every summary of this run can correct its rates.
    manifest["judge_calibration"] = getattr(judges[0], "calibration", None)
    manifest["status"] = "running"
    store.write_manifest(manifest)
    pending = plan.pending()
    if pending:
        owned = service is None
        if service is None:
            service = GenerationService(backend) if backend is not None else open_service(config)
        try:
            manifest["backend_info"] = service.describe()
            store.write_manifest(manifest)
            await generate_into(store, service, pending, progress)
        finally:
            if owned:
                await service.aclose()
    elif backend is not None:
        await backend.aclose()
    for judge in judges:
        try:
            await judge_store(store, judge, progress)
        finally:
            await judge.aclose()
    manifest["status"] = "complete"
    manifest["updated"] = now()
    store.write_manifest(manifest)
    return finalize(store, reference=config.reference_language)


async def run_check(store: RunStore, judge: Judge, per_language: int, seed: int,
                    progress: Progress | None = None) -> int:
    """Judge a stratified random sample of answers per language with a second judge (judges/check.py), and
    record the check in the manifest so the summary reports the two judges' agreement. Returns how many answers
    the check judge read."""
    from refuseu.auditor.judges.check import sample_ids

    with store.locked():
        ids = sample_ids(store.generations(), store.verdicts(), per_language, seed)
        try:
            n = await judge_store(store, judge, progress, only=ids)
        finally:
            await judge.aclose()
        manifest = store.read_manifest()
        manifest["judges"] = list(dict.fromkeys([*manifest.get("judges", []), judge.id]))
        manifest["check"] = {"judge": judge.id, "sample_per_language": per_language, "seed": seed, "n": len(ids)}
        if hasattr(judge, "spec"):
            manifest.setdefault("judge_specs", {})[judge.id] = judge.spec()
        store.write_manifest(manifest)
    return n


async def rejudge(store: RunStore, judge: Judge, *, force: bool = False, progress: Progress | None = None) -> int:
    """Judge a stored run again with ``judge`` (its verdicts go beside the primary's), without regenerating.
    Returns how many answers were judged; ``finalize`` then refreshes the summary and report."""
    store.read_manifest()  # not a run directory: one clear error before any model loads
    note_run_dir(store.dir)
    with store.locked():
        path = store.verdicts_path(judge.id)
        if force and path.exists():
            path.unlink()
        try:
            n = await judge_store(store, judge, progress)
        finally:
            await judge.aclose()
        manifest = store.read_manifest()
        manifest["judges"] = list(dict.fromkeys([*manifest.get("judges", []), judge.id]))
        if hasattr(judge, "spec"):
            manifest.setdefault("judge_specs", {})[judge.id] = judge.spec()
        store.write_manifest(manifest)
    return n
