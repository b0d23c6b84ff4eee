"""The audit pipeline: suite -> requests (stable ids) -> backend -> generations.jsonl -> judges ->
verdicts.jsonl -> summary.json -> report. Each stage reads and writes the run directory only."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.base import (
    Backend,
    BackendOptions,
    DecodingParams,
    Generation,
    GenRequest,
    record_id,
)
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.data.cases import Case, Suite
from refuseu.auditor.data.languages import is_language_code
from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.data.selection import select_cases
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.judges.base import Judge, JudgeItem
from refuseu.auditor.models.resolve import model_slug
from refuseu.auditor.reporting.gates import GateConfig
from refuseu.auditor.store import FORMAT_VERSION, RunStore, now

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("refuseu", "torch", "transformers", "lingua-language-detector", "httpx", "vllm", "trl", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def backend_name(config: AuditConfig) -> str:
    if config.backend:
        return config.backend
    return "openai" if config.base_url else "hf"


def backend_spec(config: AuditConfig) -> dict[str, Any]:
    """What identifies the audited model in record ids: backend, model and endpoint. No secrets."""
    spec: dict[str, Any] = {"backend": backend_name(config), "model": config.model}
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


def backend_options(config: AuditConfig) -> BackendOptions:
    headers = {}
    for h in config.header:
        key, sep, value = h.partition("=")
        if not sep or not key.strip():
            raise RefuseuError(f"--header: expected K=V, got '{h.split('=')[0]}...'")
        headers[key.strip()] = value
    return BackendOptions(
        batch_size=config.batch_size,
        device=config.device,
        dtype=config.dtype,
        trust_remote_code=config.trust_remote_code,
        base_url=config.base_url,
        api_key_env=config.api_key_env,
        concurrency=config.concurrency,
        rpm=config.rpm,
        timeout=config.timeout,
        max_retries=config.max_retries,
        headers=headers,
        extra={
            **{k: v for k, v in (("request_template", config.request_template),
                                 ("response_path", config.response_path)) if v},
            # Engine sizing for the vllm backend; other backends ignore it. Not part of record ids: it changes
            # how fast answers come, not which.
            "tensor_parallel_size": config.tensor_parallel_size,
            "data_parallel_size": config.data_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "max_model_len": config.max_model_len,
        },
    )


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


def validate_config(config: AuditConfig) -> None:
    """Cheap checks that run before anything is loaded, so mistakes fail in milliseconds."""
    if not config.model:
        raise RefuseuError("MODEL is required (e.g. refuseu-audit smollm2-135m)")
    if config.sample is not None and config.sample < 1:
        raise RefuseuError(f"--sample must be at least 1, got {config.sample}")
    for lang in config.langs:
        if not is_language_code(lang):
            raise RefuseuError(f"--langs: '{lang}' is not a two-letter language code (e.g. en,de,pl,lt)")
    if not is_language_code(config.reference):
        raise RefuseuError(f"--reference: '{config.reference}' is not a two-letter language code")
    if config.num_samples < 1:
        raise RefuseuError(f"--num-samples must be at least 1, got {config.num_samples}")
    if config.max_new_tokens < 1:
        raise RefuseuError(f"--max-new-tokens must be at least 1, got {config.max_new_tokens}")
    if config.concurrency < 1:
        raise RefuseuError(f"--concurrency must be at least 1, got {config.concurrency}")
    if not config.judge:
        raise RefuseuError("--judge: at least one judge is needed")
    for name in ("tensor_parallel_size", "data_parallel_size"):
        if getattr(config, name) < 1:
            raise RefuseuError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if not 0 < config.gpu_memory_utilization <= 1:
        raise RefuseuError(f"--gpu-memory-utilization must be in (0, 1], got {config.gpu_memory_utilization}")
    if config.max_model_len is not None and config.max_model_len < 16:
        raise RefuseuError(f"--max-model-len must be at least 16, got {config.max_model_len}")
    engine_flags = [flag for flag, used in (("--tensor-parallel-size", config.tensor_parallel_size != 1),
                                            ("--data-parallel-size", config.data_parallel_size != 1),
                                            ("--gpu-memory-utilization", config.gpu_memory_utilization != 0.9),
                                            ("--max-model-len", config.max_model_len is not None)) if used]
    if engine_flags and backend_name(config) != "vllm":  # silently ignoring them would mislead
        raise RefuseuError(f"{engine_flags[0]} applies to --backend vllm only (this run uses '{backend_name(config)}')")
    if config.shard is not None:
        from refuseu.auditor.data.shard import parse_shard

        parse_shard(config.shard)


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


async def _generate_all(
    backend: Backend,
    pending: list[tuple[Case, GenRequest]],
    store: RunStore,
    progress: Progress | None,
) -> None:
    """Generate in batches (longest prompts first, to cut padding and surface OOM early), up to
    ``backend.max_concurrency`` batches in flight, appending each batch as soon as it is done."""
    pending = sorted(pending, key=lambda cr: -sum(len(c) for _, c in cr[1].messages))
    size = max(1, backend.batch_size)
    batches = [pending[i:i + size] for i in range(0, len(pending), size)]
    sem = asyncio.Semaphore(max(1, backend.max_concurrency))
    done = 0

    async def run(batch: list[tuple[Case, GenRequest]]) -> None:
        nonlocal done
        stream = getattr(backend, "generate_stream", None)
        if stream is not None:  # optional hook (vllm): answers stored as they finish, not when the batch ends
            async with sem:
                answered = 0
                async for part in stream([r for _, r in batch]):
                    store.append_generations([generation_record(batch[i][0], batch[i][1], g) for i, g in part])
                    answered += len(part)
                    done += len(part)
                    if progress:
                        progress("generate", done, len(pending))
            if answered != len(batch):
                raise RefuseuError(f"backend '{backend.name}' answered {answered} of {len(batch)} requests")
            return
        async with sem:
            gens = await backend.generate([r for _, r in batch])
        if len(gens) != len(batch):
            raise RefuseuError(f"backend '{backend.name}' returned {len(gens)} answers for {len(batch)} requests")
        store.append_generations([generation_record(c, r, g) for (c, r), g in zip(batch, gens)])
        done += len(batch)
        if progress:
            progress("generate", done, len(pending))

    tasks = [asyncio.create_task(run(b)) for b in batches]
    try:
        for fut in asyncio.as_completed(tasks):
            await fut
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def judge_store(store: RunStore, judge: Judge, progress: Progress | None = None) -> int:
    """Judge every answered record that this judge has not judged yet. Returns how many were judged."""
    generations = store.generations()
    existing = store.verdicts(judge.id)
    todo = [rec for rid, rec in generations.items() if rec.get("error") is None and rid not in existing]
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
    from refuseu.auditor.reporting.html import write_outputs
    from refuseu.auditor.reporting.scoring import summarize

    manifest = store.read_manifest()
    primary = manifest.get("judge", "markers")
    extra = {j: store.verdicts(j) for j in store.judges_present() if j != primary}
    generations, verdicts = store.generations(), store.verdicts()
    langs = {rec["lang"] for rec in generations.values()}
    if reference and len(langs) > 1 and reference not in langs:
        raise RefuseuError(f"--reference {reference}: the run has no answers in that language "
                           f"(it has {', '.join(sorted(langs))})")
    summary = summarize(manifest, generations, verdicts, reference=reference, gate=gate, extra_judges=extra)
    write_outputs(store, summary, generations, verdicts)  # the records already loaded: no second read
    return summary


def prepare(config: AuditConfig) -> tuple[Suite, list[Case], RunStore, dict[str, Any], list[GenRequest]]:
    validate_config(config)
    gate = GateConfig.from_file(config.gate) if config.gate else GateConfig()
    suite = load_suite(config.suite)
    cases = select_cases(suite, langs=config.langs or None, categories=config.categories or None,
                         sample=config.sample, seed=config.seed)
    if not cases:
        raise RefuseuError("the selection is empty: no cases match --langs/--categories")
    selected_langs = {c.lang for c in cases}
    if len(selected_langs) > 1 and config.reference not in selected_langs:
        raise RefuseuError(f"--reference {config.reference} is not among the audited languages "
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
    return suite, cases, store, manifest, requests


async def run_audit_async(config: AuditConfig, progress: Progress | None = None,
                          backend: Backend | None = None) -> dict[str, Any]:
    """The whole audit. Returns the summary; the caller maps it to an exit code."""
    from refuseu.auditor.backends import get_backend
    from refuseu.auditor.judges import get_judge

    _, cases, store, manifest, requests = prepare(config)
    judges = [get_judge(name) for name in config.judge]  # fail on an unknown judge before generating
    manifest["status"] = "running"
    store.write_manifest(manifest)
    by_id = {(c.id, c.lang): c for c in cases}
    stored = store.generations()
    pending = [(by_id[(r.case_id, r.lang)], r) for r in requests
               if r.id not in stored or stored[r.id].get("error") is not None]
    if pending:
        backend = backend or get_backend(backend_name(config), config.model, backend_options(config))
        manifest["backend_info"] = backend.describe()
        store.write_manifest(manifest)
        try:
            await _generate_all(backend, pending, store, progress)
        finally:
            await backend.aclose()
    for judge in judges:
        try:
            await judge_store(store, judge, progress)
        finally:
            await judge.aclose()
    manifest["status"] = "complete"
    manifest["updated"] = now()
    store.write_manifest(manifest)
    return finalize(store, reference=config.reference)
