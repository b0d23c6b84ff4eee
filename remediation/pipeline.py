"""refuseu-fix, stage by stage. Every stage reads and writes files in the output folder:

    audit run --(prepare)--> split.json, pairs.jsonl, verify/cases.jsonl, verify/heldout_pairs.jsonl
              --(train)----> adapter/ (or model/), train_log.jsonl, fix.json["train"], merged/ with --merge
              --(verify)---> verify/ (a run of the fixed model), verify/baseline/, preference.json,
                             before_after.html, README.md

Under ``accelerate launch`` every process trains; preparing and verifying happen on the main process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.service import GenerationService
from refuseu.auditor.data.cases import Case
from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.models.hf_loading import materialize
from refuseu.auditor.models.resolve import model_slug, resolve_model
from refuseu.auditor.progress import Progress
from refuseu.auditor.store import RunStore, write_json_atomic
from refuseu.remediation import pairs as P
from refuseu.remediation.audit_io import (
    AuditedAnswer,
    AuditRun,
    answers_of,
    audit_split,
    extra_benign_ids,
    load_audit,
)
from refuseu.remediation.config import FixConfig
from refuseu.remediation.generation import audit_config, run_cases, write_cases
from refuseu.remediation.layout import FixDir
from refuseu.remediation.profiles import Profile, pick_profile
from refuseu.remediation.templates import load_all_templates

PROBE = 2  # teacher probe cases per language


def default_out(model: str) -> str:
    return str(Path("fixes") / f"{model_slug(model)}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")


def _answers(store: RunStore) -> list[AuditedAnswer]:
    return answers_of(store.generations(), store.verdicts())


def _suite_cases(run: AuditRun) -> list[Case]:
    """The audited suite, for benign ids beyond the audit. Missing or changed suites just give no extras."""
    suite = run.manifest.get("suite") or {}
    for spec in (suite.get("source"), suite.get("name")):
        if not spec:
            continue
        try:
            return list(load_suite(str(spec)).cases)
        except RefuseuError:
            continue
    return []


class Preparer:
    """Builds the split, the preference pairs and the verification set from the audit."""

    def __init__(self, cfg: FixConfig, run: AuditRun, out: Path, profile: Profile, progress: Progress | None) -> None:
        self.cfg, self.run, self.out, self.profile, self.progress = cfg, run, out, profile, progress
        self.dir = FixDir(out)
        self.system = (run.manifest.get("decoding") or {}).get("system")
        self.langs = run.languages
        self._service: GenerationService | None = None

    def service(self) -> GenerationService:
        """The base model, loaded once and lent to every generation run of this stage."""
        if self._service is None:
            from refuseu.auditor.runner import open_service

            self._service = open_service(self._config([], self.out / "_", self.cfg.model))
        return self._service

    def _config(self, cases: list[Case], out: Path, model: str) -> Any:
        suite = write_cases(cases, out / "cases.jsonl") if cases else out / "cases.jsonl"
        return audit_config(model, suite, out, self.run.manifest, judges=self.run.judges[:1], device=self.cfg.device,
                            dtype=self.cfg.dtype, batch_size=self.cfg.gen_batch_size,
                            trust_remote_code=self.cfg.trust_remote_code, backend=self.cfg.backend)

    def generate(self, cases: list[Case], out: Path, model: str | None = None) -> list[AuditedAnswer]:
        if not cases:
            return []
        conf = self._config(cases, out, model or self.cfg.model)
        service = self.service() if model is None else None  # another teacher model: its own, closed by the run
        asyncio.run(run_cases(conf, service, self.progress))
        return _answers(RunStore(out))

    def teacher_refusals(self, failures: list[AuditedAnswer]) -> tuple[dict[tuple[str, str], str], dict[str, Any]]:
        """Refusals written by the teacher, kept only where the judge calls them a refusal and language ID
        confirms the prompt's language. The teacher first answers a probe of PROBE cases per language;
        only languages where it wrote at least one acceptable refusal are asked for the rest, so a weak
        teacher (a small model that babbles in most languages) costs little."""
        if self.cfg.teacher == "none":
            return {}, {"asked": 0, "accepted": 0, "languages": []}
        templates = load_all_templates()
        by_lang: dict[str, list[Case]] = {}
        for a in failures:
            t = templates.get(a.case.lang)
            if a.case.reference or t is None or t.teacher_system is None:
                continue
            if any(role == "system" for role, _ in a.case.messages) or self.system:
                continue  # the audit already had a system prompt; ours would change the request
            by_lang.setdefault(a.case.lang, []).append(
                Case(a.case.id, a.case.lang, a.case.category, a.case.style,
                     (("system", t.teacher_system), *a.case.messages), "refuse"))
        model = None if self.cfg.teacher == "self" else self.cfg.teacher
        probe = [c for cases in by_lang.values() for c in cases[:PROBE]]
        accepted = self._accepted(self.generate(probe, self.dir.run("teacher"), model), self.dir.run("teacher"))
        good = sorted({lang for _, lang in accepted})
        rest = [c for lang in good for c in by_lang[lang][PROBE:]]
        accepted.update(self._accepted(self.generate(rest, self.dir.run("teacher_rest"), model), self.dir.run("teacher_rest")))
        return accepted, {"asked": len(probe) + len(rest), "accepted": len(accepted), "languages": good}

    @staticmethod
    def _accepted(answers: list[AuditedAnswer], run_dir: Path) -> dict[tuple[str, str], str]:
        if not answers:
            return {}
        verdicts = RunStore(run_dir).verdicts()
        out = {}
        for a in answers:
            lang = (verdicts.get(a.record["id"]) or {}).get("response_lang")
            if a.outcome == "refusal" and a.record.get("finish_reason") != "length" and lang == a.case.lang:
                out[(a.case.id, a.case.lang)] = (a.record.get("response") or "").strip()
        return out

    def prepare(self) -> dict[str, Any]:
        cfg, run = self.cfg, self.run
        train_ids, verify_ids = audit_split(run, cfg.holdout, cfg.seed)
        train_set, verify_set = set(train_ids), set(verify_ids)
        failures = [a for a in run.answers if a.case.id in train_set and a.complied]
        if cfg.mode == "english-only":
            failures = [a for a in failures if a.case.lang == P.ENGLISH]
        if not failures:
            judged = sum(1 for a in run.answers if a.case.harmful and a.outcome not in (None, "unjudgeable"))
            where = " in English" if cfg.mode == "english-only" else ""
            raise RefuseuError(
                f"--audit: nothing to fix{where}: no harmful case in the training split of {run.dir} was complied "
                f"with ({judged} judged harmful answers; the rest were refused or unjudgeable)")
        missing = sorted({a.case.lang for a in failures} - set(load_all_templates()))
        if missing:
            raise RefuseuError(f"no refusal templates for language(s) {', '.join(missing)} "
                               "(add remediation/data/refusals/<lang>.yaml)")
        audit_ids = {a.case.id for a in run.answers}
        suite_cases = _suite_cases(run)
        n_anchor = cfg.anchors if cfg.anchors is not None else self.profile.anchors
        anchor_ids, benign_verify_ids = extra_benign_ids(suite_cases, audit_ids, n_anchor, cfg.verify_benign, cfg.seed)
        anchor_langs = [P.ENGLISH] if cfg.mode == "english-only" else self.langs
        anchor_cases = [c for c in suite_cases if c.id in set(anchor_ids) and c.lang in anchor_langs]

        t0 = time.perf_counter()
        teacher, teacher_counts = self.teacher_refusals(failures)
        anchor_answers = self.generate(anchor_cases, self.dir.run("anchors"))
        gen_s = time.perf_counter() - t0

        harmful, no_chosen = P.harmful_pairs(failures, train_set, teacher, self.system, "train")
        anchors = P.anchor_pairs([*run.answers, *anchor_answers], train_set | set(anchor_ids), self.system, "train")
        if cfg.mode == "english-only":
            anchors = [r for r in anchors if r["lang"] == P.ENGLISH]
        rows = P.select_mode(harmful, anchors, cfg.mode, seed=cfg.seed, summary=run.summary, flag_weight=cfg.flag_weight)
        asyncio.run(self.check_chosen(rows))
        self.dir.write_jsonl(self.dir.pairs, rows)

        heldout_h, _ = P.harmful_pairs(run.answers, verify_set, {}, self.system, "verify", use_teacher=False)
        heldout_a = P.anchor_pairs(run.answers, verify_set, self.system, "verify")
        self.dir.write_jsonl(self.dir.heldout_pairs, [*heldout_h, *heldout_a])

        verify_cases = [a.case for a in run.answers if a.case.id in verify_set and int(a.record.get("sample", 0)) == 0]
        verify_cases += [c for c in suite_cases if c.id in set(benign_verify_ids) and c.lang in self.langs]
        write_cases(verify_cases, self.dir.verify_cases)
        split = {
            "method": "sha256(seed|id), stratified by category; an id is on one side in every language",
            "seed": cfg.seed, "holdout": cfg.holdout, "languages": self.langs,
            "train_ids": train_ids, "verify_ids": verify_ids,
            "anchor_ids": anchor_ids, "verify_benign_ids": benign_verify_ids,
        }
        write_json_atomic(self.dir.split_json, split)
        sources: dict[str, int] = {}
        for r in rows:
            sources[f"{r['kind']}:{r['source']}"] = sources.get(f"{r['kind']}:{r['source']}", 0) + 1
        return {"n_pairs": len(rows), "n_heldout_pairs": len(heldout_h) + len(heldout_a),
                "n_verify_cases": len(verify_cases), "sources": sources, "teacher": teacher_counts,
                "languages_without_chosen": no_chosen, "generation_s": round(gen_s, 1)}

    async def check_chosen(self, rows: list[dict[str, Any]]) -> None:
        """Judge every chosen refusal (and language-ID it), recording the result on the row."""
        from refuseu.auditor.judges import build_judges
        from refuseu.auditor.judges.base import JudgeItem
        from refuseu.remediation.generation import judge_options_for

        harmful = [r for r in rows if r["kind"] == P.HARMFUL]
        first = self.run.judges[:1]  # the audit's judge, with the audit's options
        judge = build_judges(first, judge_options_for(first, (self.run.manifest.get("config") or {}).get("judge_option")
                                                      or []))[0]
        try:
            items = [JudgeItem(r["id"], Case(r["case_id"], r["lang"], r["category"], r["style"],
                                             (("user", r["prompt"][-1]["content"]),)), r["chosen"][0]["content"])
                     for r in harmful]
            verdicts = await judge.judge(items) if items else []
        finally:
            await judge.aclose()
        from refuseu.auditor.judges.langid import detect_languages

        langs = detect_languages([r["chosen"][0]["content"] for r in harmful])
        for r, v, lang in zip(harmful, verdicts, langs):
            r["checks"] = {"chosen_verdict": v.outcome, "chosen_lang": lang}

    def close(self) -> None:
        if self._service is not None:
            asyncio.run(self._service.aclose())
            self._service = None


def _distributed() -> Any:
    """accelerate's process state when launched with several processes, else None."""
    try:
        from accelerate import PartialState
    except ImportError:
        return None
    state = PartialState()
    return state if state.num_processes > 1 else None


def run_fix(cfg: FixConfig, explicit: set[str], progress: Progress | None = None, log: Any = print) -> int:
    """The whole fix. Returns the exit code (0 verified, 1 verification failed)."""
    from refuseu.auditor.errors import note_run_dir
    from refuseu.remediation.train import merge_adapter, set_adapter_base, train_dpo

    run = load_audit(cfg.audit, cfg.model)
    out = Path(cfg.out or default_out(cfg.model))
    cfg.out = str(out)
    fd = FixDir(out)
    note_run_dir(out)
    profile = pick_profile(cfg.device)
    state = _distributed()
    main = state is None or state.is_main_process
    started = time.perf_counter()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        previous = _prepared(out, cfg)
        if previous is not None:
            facts = previous
            log(f"pairs: reusing {fd.pairs} ({facts['n_pairs']} training pairs)")
        else:
            prep = Preparer(cfg, run, out, profile, progress)
            try:
                facts = prep.prepare()
            finally:
                prep.close()
            log(f"pairs: {facts['n_pairs']} training pairs ({facts['sources']}), {facts['n_heldout_pairs']} held-out "
                f"pairs, {facts['n_verify_cases']} verification cases")
        write_json_atomic(fd.fix_json, {"tool": "refuseu-fix", "model": cfg.model, "audit": str(run.dir),
                                           "config": cfg.to_dict(), "explicit_flags": sorted(explicit),
                                           "profile": profile.name, "prepare": facts})
    if cfg.prepare_only:
        log(f"prepared {out}; train with the same command without --prepare-only")
        return 0
    if state is not None:
        state.wait_for_everyone()
    rows = P.expand_weights(fd.read_pairs())
    base_path = materialize(resolve_model(cfg.model))
    info = train_dpo(base_path, rows, cfg, profile, explicit, out, progress)
    if state is not None:
        state.wait_for_everyone()
    if not main:
        return 0
    if not cfg.full:
        set_adapter_base(fd.adapter, _portable(cfg.model))
        if cfg.merge:
            merge_adapter(base_path, fd.adapter, fd.merged, cfg.trust_remote_code)
    log(f"trained: {info['steps']} steps in {info['wall_s']:.0f} s ({info['method']}, {info['device']})")
    fix = fd.read_fix()
    fix["train"] = info
    fix["prepare_train_s"] = round(time.perf_counter() - started, 1)
    write_json_atomic(fd.fix_json, fix)
    if cfg.skip_verify:
        log(f"skipped verification; run: refuseu-fix verify {out}")
        return 0
    from refuseu.remediation.verify import verify

    return verify(out, progress=progress, log=log)


# Options that change which pairs are built; the same values mean the stored pairs can be reused.
PAIR_OPTIONS = ("model", "audit", "mode", "teacher", "holdout", "seed", "anchors", "verify_benign", "flag_weight")


def _prepared(out: Path, cfg: FixConfig) -> dict[str, Any] | None:
    """The stored preparation facts when pairs for exactly these options exist (e.g. --prepare-only ran)."""
    fd = FixDir(out)
    if not fd.prepared():
        return None
    fix = fd.read_fix()
    old = fix.get("config") or {}
    if any(old.get(k) != getattr(cfg, k) for k in PAIR_OPTIONS) or "prepare" not in fix:
        return None
    return fix["prepare"]  # type: ignore[no-any-return]


def _portable(model: str) -> str:
    """How the adapter names its base: an alias or hub id as given, a local folder as an absolute path."""
    resolved = resolve_model(model)
    return resolved.path if resolved.kind == "dir" else model
