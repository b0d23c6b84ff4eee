"""Bad input: one clear line, exit 2, no traceback, run directory intact."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error


def test_malformed_suite_line(cli, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok", "lang": "en"}\n{"prompt": "x", "lang": "en", "expected": "sometimes"}\n')
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = cli("fake", "--backend", "fake", "--suite", str(f), "--out", str(out), "--quiet")
    assert_one_line_error(proc, f"{f}:2", "'expected'")
    assert (out / "keep.txt").read_text() == "precious"


def test_unknown_language(cli, tmp_path):
    proc = cli("fake", "--backend", "fake", "--suite", "core:smoke", "--langs", "en,xx", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "--langs", "xx")


def test_bad_language_code(cli, tmp_path):
    proc = cli("fake", "--backend", "fake", "--langs", "english", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "'english' is not a two-letter language code")


def test_missing_model_path(cli, tmp_path):
    proc = cli(str(tmp_path / "no-such-model"), "--suite", "core:smoke", "--langs", "en", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "model path not found")


def test_sample_zero(cli, tmp_path):
    proc = cli("fake", "--backend", "fake", "--sample", "0", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "--sample must be at least 1")


def test_unknown_backend_and_judge(cli, tmp_path):
    proc = cli("m", "--backend", "nope", "--suite", "core:smoke", "--langs", "en", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "unknown backend 'nope'")
    proc = cli("fake", "--backend", "fake", "--judge", "nope", "--suite", "core:smoke", "--langs", "en",
               "--out", str(tmp_path / "r2"))
    assert_one_line_error(proc, "unknown judge 'nope'")


def test_config_file_and_flag_override(cli, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("backend: fake\nsuite: core:smoke\nlangs: [en]\nmax_new_tokens: 7\nquiet: true\n")
    proc = cli("fake", "--config", str(conf), "--max-new-tokens", "9", "--out", str(tmp_path / "r"))
    assert proc.returncode in (0, 1), proc.stderr
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["decoding"]["max_new_tokens"] == 9 and manifest["selection"]["langs"] == ["en"]
    conf.write_text("bogus_option: 1\n")
    proc = cli("fake", "--config", str(conf), "--out", str(tmp_path / "r3"))
    assert_one_line_error(proc, "unknown field 'bogus_option'")


def test_help_is_fast_and_lists_subcommands(cli):
    import time

    start = time.perf_counter()
    proc = cli("--help")
    assert proc.returncode == 0 and "Subcommands:" in proc.stdout
    assert time.perf_counter() - start < 5  # generous for a loaded CI box; about 0.1 s here


def test_gate_exit_code_and_file(cli, tmp_path):
    proc = cli("fake:refuse=en", "--backend", "fake", "--suite", "core:smoke", "--langs", "en,de", "--quiet",
               "--out", str(tmp_path / "r"))
    assert proc.returncode == 1, proc.stderr
    gate = tmp_path / "gate.yaml"
    gate.write_text("min_refusal_rate: 0.0\nmax_gap_points: null\n")
    proc = cli("report", str(tmp_path / "r"), "--gate", str(gate))
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.mark.parametrize("model", ["./report"])
def test_model_named_like_subcommand(cli, tmp_path, model):
    proc = cli(model, "--suite", "core:smoke", "--langs", "en", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_one_line_error(proc, "model path not found: ./report")


def test_reference_must_be_audited(cli, tmp_path):
    proc = cli("fake", "--backend", "fake", "--suite", "core:smoke", "--langs", "de,pl", "--reference", "en",
               "--out", str(tmp_path / "r0"))
    assert_one_line_error(proc, "--reference en is not among the audited languages")
    # no --reference and no English audited: the first audited language is the reference, and the run says so
    proc = cli("fake", "--backend", "fake", "--suite", "core:smoke", "--langs", "pl,de", "--quiet",
               "--out", str(tmp_path / "r"))
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["reference"] == "de" and summary["by_language"]["pl"]["gap"] is not None
    proc = cli("report", str(tmp_path / "r"), "--reference", "lv")
    assert_one_line_error(proc, "--reference lv: the run has no answers in that language")
