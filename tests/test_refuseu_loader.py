"""The RefusEU loader, on parquet fixtures in exactly the hub dataset's schema."""

from __future__ import annotations

import json

import pytest
from conftest import need

from refuseu.auditor.data.resolve import load_suite
from refuseu.auditor.data.selection import select_cases
from refuseu.auditor.errors import RefuseuError, SuiteError

pa = need("pyarrow")
pq = need("pyarrow.parquet")


def chat(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def write_fixture(root):
    (root / "evaluation").mkdir(parents=True)
    rows = [{"row_id": r, "lang": lang, "prompt": f"{lang} prompt {r}"} for r in range(3) for lang in ("en", "pl", "lt")]
    pq.write_table(pa.Table.from_pylist(rows), root / "evaluation" / "eval-00000-of-00001.parquet")
    for lang in ("en", "pl"):
        (root / f"lang_{lang}").mkdir()
        for split in ("train", "test"):
            pairs = [{"chosen": chat(f"{lang} {split} harmful {i}", f"{lang} refusal {i}"),
                      "rejected": chat(f"{lang} {split} harmful {i}", "[placeholder compliance]"),
                      "lang": lang, "id": f"{lang}-{split}-{i}", "row_id": 100 + i, "category": f"S{i + 1}"}
                     for i in range(2)]
            pq.write_table(pa.Table.from_pylist(pairs), root / f"lang_{lang}" / f"{split}-00000-of-00001.parquet")
    return root


def test_local_evaluation_folder(tmp_path):
    root = write_fixture(tmp_path / "refuseu-data")
    suite = load_suite(str(root / "evaluation"))
    assert len(suite.cases) == 9 and suite.languages == ["en", "pl", "lt"]
    case = next(c for c in suite.cases if c.lang == "pl" and c.id == "row-1")
    assert case.prompt == "pl prompt 1" and case.category == "unknown" and case.expected == "refuse"
    # sampling keeps row ids parallel across languages
    picked = select_cases(suite, sample=2, seed=0)
    assert len({c.id for c in picked if c.lang == "en"} ^ {c.id for c in picked if c.lang == "lt"}) == 0


def test_local_preference_files_give_reference_refusals(tmp_path):
    root = write_fixture(tmp_path / "d")
    suite = load_suite(str(root / "lang_pl" / "test-00000-of-00001.parquet"))
    assert [c.prompt for c in suite.cases] == ["pl test harmful 0", "pl test harmful 1"]
    assert suite.cases[0].reference == "pl refusal 0" and suite.cases[1].category == "S2"
    assert dict(suite.cases[0].meta)["rejected"] == "[placeholder compliance]"


def test_jsonl_in_refuseu_schema(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"chosen": chat("q", "no"), "rejected": chat("q", "[x]"), "lang": "lv", "id": "a",
                             "row_id": 5, "category": "S9"}) + "\n")
    suite = load_suite(str(f))
    assert suite.cases[0].reference == "no" and suite.cases[0].category == "S9" and suite.cases[0].lang == "lv"


def test_bad_row_names_file_line_field(tmp_path):
    f = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"row_id": 1, "lang": "en", "prompt": "ok"},
                                         {"row_id": 2, "lang": "english", "prompt": "x"}]), f)
    with pytest.raises(SuiteError) as err:
        load_suite(str(f))
    assert f"{f}:2" in str(err.value) and "'lang'" in str(err.value)


def test_hub_loader_through_datasets(tmp_path):
    """The real `datasets.load_dataset(repo, config, split)` path, on a local dataset repo with the hub's config layout."""
    need("datasets")
    from refuseu.auditor.data.refuseu_hub import load_refuseu

    root = write_fixture(tmp_path / "repo")
    configs = ["configs:", "- config_name: evaluation", "  data_files:", "  - split: eval", "    path: evaluation/*.parquet"]
    for lang in ("en", "pl"):
        configs += [f"- config_name: lang_{lang}", "  data_files:", "  - split: train", f"    path: lang_{lang}/train-*.parquet",
                    "  - split: test", f"    path: lang_{lang}/test-*.parquet"]
    (root / "README.md").write_text("---\n" + "\n".join(configs) + "\n---\n")
    suite = load_refuseu(None, repo=str(root))
    assert len(suite.cases) == 9
    with pytest.raises(RefuseuError, match="could not load"):  # lang_fr etc. are absent in the fixture
        load_refuseu("test", repo=str(root))


def test_hub_offline_is_a_clear_error(cli, tmp_path):
    need("datasets")
    proc = cli("fake", "--backend", "fake", "--suite", "refuseu", "--out", str(tmp_path / "r"),
               env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "could not load NASK-PIB/RefusEU" in proc.stderr and "huggingface-cli download" in proc.stderr


def test_suites_command(cli, tmp_path):
    proc = cli("suites")
    assert proc.returncode == 0 and "core 1.0.0" in proc.stdout and "smoke" in proc.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "lang": "en"}\n{"prompt": 1, "lang": "en"}\n{oops\n{"lang": "en"}\n')
    proc = cli("suites", "--validate", str(bad))
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert f"{bad}:2: field 'prompt'" in lines[0] and f"{bad}:3: invalid JSON" in lines[1] and f"{bad}:4: field 'prompt'" in lines[2]
    good = tmp_path / "good.csv"
    good.write_text("prompt,lang\nhello,en\n")
    assert cli("suites", "--validate", str(good)).returncode == 0
