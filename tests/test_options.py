"""One definition per option (issue 15): every flag of every command comes from one dataclass field with its
help; no flag spelling is defined by two fields; deprecated spellings still work and say so; --config layers
under flags; typed backend and judge options reject what they do not take."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.options import flag_of

ROOT = Path(__file__).resolve().parents[1]


def command_configs() -> list[type]:
    from refuseu.auditor.cli.compare import CompareCommand
    from refuseu.auditor.cli.judge import JudgeCommand, JudgeEvalCommand
    from refuseu.auditor.cli.judge_train import JudgeTrainCommand
    from refuseu.auditor.cli.merge import MergeCommand
    from refuseu.auditor.cli.report import ReportCommand
    from refuseu.auditor.cli.suites import SuitesCommand
    from refuseu.auditor.config import AuditConfig
    from refuseu.remediation.config import FixConfig, VerifyCommand

    return [AuditConfig, JudgeCommand, JudgeEvalCommand, JudgeTrainCommand, ReportCommand, CompareCommand,
            MergeCommand, SuitesCommand, FixConfig, VerifyCommand]


def definitions(aliases: bool = False) -> dict[str, set[tuple[str, str]]]:
    """flag spelling -> {(defining class, field)} over every command's composed dataclasses (primary spellings, or
    the deprecated ones with ``aliases``)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for cfg in command_configs():
        for klass in cfg.__mro__:
            if not dataclasses.is_dataclass(klass):
                continue
            own = klass.__dict__.get("__annotations__", {})
            for f in dataclasses.fields(klass):
                if f.name not in own or not f.metadata.get("cli", True):
                    continue
                for spelling in (f.metadata.get("aliases", ()) if aliases else (flag_of(f),)):
                    out.setdefault(spelling, set()).add((f"{klass.__module__}.{klass.__qualname__}", f.name))
    return out


def test_every_flag_is_defined_once():
    twice = {flag: sorted(where) for flag, where in definitions().items() if len(where) > 1}
    assert not twice, f"flags defined in more than one place: {twice}"


def test_deprecated_spellings_never_collide_within_a_command():
    """A deprecated spelling lives one release beside the flag that replaced it; it may spell another command's
    flag (refuseu-fix --batch-size was the DPO batch), but never one of its own command's."""
    for cfg in command_configs():
        flags = {flag_of(f) for f in dataclasses.fields(cfg) if f.metadata.get("cli", True)}
        for f in dataclasses.fields(cfg):
            clash = flags & set(f.metadata.get("aliases", ()))
            assert not clash, f"{cfg.__name__}: deprecated {clash} is also a flag of the same command"


def test_the_check_finds_a_flag_defined_twice():
    """The check itself: two fields spelling the same flag are found."""
    from refuseu.auditor.options import opt

    @dataclasses.dataclass
    class A:
        device: str = opt("cpu", "one")

    @dataclasses.dataclass
    class B:
        device: str = opt("cpu", "two")

    spellings: dict[str, set[str]] = {}
    for klass in (A, B):
        for f in dataclasses.fields(klass):
            spellings.setdefault(flag_of(f), set()).add(klass.__qualname__)
    assert spellings["--device"] == {"test_the_check_finds_a_flag_defined_twice.<locals>.A",
                                     "test_the_check_finds_a_flag_defined_twice.<locals>.B"}


def test_no_hand_written_arguments_outside_the_generator():
    offenders = []
    for path in [*ROOT.glob("auditor/**/*.py"), *ROOT.glob("remediation/**/*.py")]:
        if path.name == "options.py" and path.parent.name == "auditor":
            continue
        if re.search(r"\.add_argument\(|ArgumentParser\(", path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_every_field_has_help():
    for cfg in command_configs():
        for f in dataclasses.fields(cfg):
            assert f.metadata.get("help"), f"{cfg.__name__}.{f.name} has no help text"


@pytest.mark.parametrize("argv", [["refuseu-audit"], ["refuseu-audit", "judge"], ["refuseu-audit", "judge-eval"],
                                  ["refuseu-audit", "judge-train"], ["refuseu-audit", "report"],
                                  ["refuseu-audit", "compare"], ["refuseu-audit", "merge"], ["refuseu-audit", "suites"],
                                  ["refuseu-fix"], ["refuseu-fix", "verify"]])
def test_help_of_every_command(argv):
    exe = str(Path(sys.executable).parent / argv[0])
    proc = subprocess.run([exe, *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "usage:" in proc.stdout


def test_deprecated_spelling_still_works_and_warns(capsys):
    from refuseu.remediation.cli import fix_parser

    args = vars(fix_parser().parse_args(["m", "--epochs", "3", "--grad-accum", "2", "--batch-size", "4"]))
    assert (args["num_train_epochs"], args["gradient_accumulation_steps"], args["per_device_train_batch_size"]) == \
        (3.0, 2, 4)
    err = capsys.readouterr().err
    assert "--epochs is deprecated" in err and "use --num-train-epochs" in err and "--grad-accum is deprecated" in err


def test_config_file_under_flags(tmp_path):
    from refuseu.auditor.cli.audit import audit_parser
    from refuseu.auditor.config import AuditConfig
    from refuseu.auditor.options import parse_config

    yml = tmp_path / "c.yaml"
    yml.write_text("langs: [en, de]\nmax-new-tokens: 64\nheader: {X-Team: audit}\n", encoding="utf-8")
    cfg, _ = parse_config(audit_parser(), AuditConfig, ["m", "--config", str(yml), "--max-new-tokens", "32"])
    assert (cfg.langs, cfg.max_new_tokens, cfg.header) == (["en", "de"], 32, ["X-Team=audit"])
    yml.write_text("colour: blue\n", encoding="utf-8")
    with pytest.raises(RefuseuError, match="unknown field 'colour'"):
        parse_config(audit_parser(), AuditConfig, ["m", "--config", str(yml)])


def test_validation_lives_in_the_dataclasses():
    from refuseu.auditor.config import AuditConfig

    for kw, message in (({"langs": [""]}, "--langs: an empty value"), ({"judge": []}, "--judge: an empty judge"),
                        ({"sample": 0}, "--sample must be at least 1"), ({"top_p": 0}, "--top-p must be in"),
                        ({"concurrency": 0}, "--concurrency must be at least 1"), ({"dtype": "fp8"}, None)):
        if message is None:
            continue
        with pytest.raises(RefuseuError, match=re.escape(message)):
            AuditConfig(model="m", **kw)


def test_typed_backend_options_reject_unknown_keys():
    from refuseu.auditor.backends import backend_class, options_from
    from refuseu.auditor.config import AuditConfig, VLLMOptions

    cfg = AuditConfig(model="m", backend="vllm", tensor_parallel_size=2)
    opts = options_from(cfg, backend_class("vllm"), {"max_model_len": "512"})
    assert isinstance(opts.backend, VLLMOptions) and (opts.backend.tensor_parallel_size, opts.backend.max_model_len) == (2, 512)
    with pytest.raises(RefuseuError, match="unknown option 'colour'"):
        options_from(cfg, backend_class("vllm"), {"colour": "blue"})


def test_judge_options_are_typed_and_targeted():
    from refuseu.auditor.judges import build_judges

    judges = build_judges(["markers", "llm"], ["llm.model=judge-model", "llm.max_new_tokens=32", "judge_id=x"])
    assert judges[1].model == "judge-model" and judges[1].max_new_tokens == 32
    assert judges[0].id == judges[1].id == "x"  # a plain K=V goes to every judge that takes it
    with pytest.raises(RefuseuError, match="none of the judges"):
        build_judges(["markers"], ["model=x"])
    with pytest.raises(RefuseuError, match="must be int"):
        build_judges(["llm"], ["llm.model=m", "llm.max_new_tokens=lots"])


def test_entry_point_plugins_register_backends(monkeypatch):
    """A third-party backend registered under the refuseu.backends entry point group is found by name."""
    import importlib.metadata as md

    from refuseu.auditor.backends import backend_class

    ep = md.EntryPoint(name="mine", value="refuseu.auditor.backends.fake:FakeBackend", group="refuseu.backends")
    real = md.entry_points
    monkeypatch.setattr(md, "entry_points", lambda group=None, **kw: [ep] if group == "refuseu.backends" else real(group=group))
    assert backend_class("mine").__name__ == "FakeBackend"
    with pytest.raises(RefuseuError, match="unknown backend 'theirs'.*mine"):
        backend_class("theirs")
