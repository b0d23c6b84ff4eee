"""``--suite``: a built-in suite name, a registered loader (the RefusEU hub data), a suite folder, or
custom JSONL/CSV files."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from refuseu.auditor.data.cases import Suite
from refuseu.auditor.data.suite_files import check_unique, load_case_file, load_suite_dir
from refuseu.auditor.errors import RefuseuError, SuiteError


def builtin_suites() -> dict[str, Path]:
    root = files("refuseu.suites")
    out = {}
    for entry in root.iterdir():
        if entry.is_dir() and (entry / "suite.yaml").is_file():
            out[entry.name] = Path(str(entry))
    return dict(sorted(out.items()))


# External suite loaders (e.g. the RefusEU hub dataset) register here as "name": "module:function".
SUITE_LOADERS: dict[str, str] = {
    "refuseu": "refuseu.auditor.data.refuseu_hub:load_refuseu",
}


def load_suite(spec: str) -> Suite:
    """Resolve ``--suite``: a built-in name, a registered loader, a suite folder, or a JSONL/CSV file."""
    name, _, selection = spec.partition(":")
    builtins = builtin_suites()
    if name in builtins:
        suite = load_suite_dir(builtins[name])
        if selection == "smoke":
            wanted = set(suite.smoke)
            return suite.replace_cases(c for c in suite.cases if c.id in wanted)
        if selection:
            raise RefuseuError(f"unknown selection '{selection}' for suite '{name}' (known: smoke)")
        return suite
    if name in SUITE_LOADERS:
        from refuseu.auditor.registry import load_object

        return load_object(SUITE_LOADERS[name])(selection or None)  # type: ignore[no-any-return]
    path = Path(spec)
    if path.exists():
        from refuseu.auditor.data.refuseu_hub import load_refuseu_path, looks_like_refuseu

        if path.is_dir() and (path / "suite.yaml").is_file():
            return load_suite_dir(path)
        if looks_like_refuseu(path):
            return load_refuseu_path(path)
    if path.is_dir():
        return _custom_suite(sorted(p for p in path.iterdir() if p.suffix.lower() in (".jsonl", ".csv")), path)
    if path.suffix.lower() in (".jsonl", ".csv"):
        return _custom_suite([path], path)
    known = ", ".join([*builtins, *SUITE_LOADERS]) or "none"
    raise RefuseuError(f"unknown suite '{spec}': not a built-in suite ({known}) and no such file or folder")


def _custom_suite(paths: list[Path], source: Path) -> Suite:
    if not paths:
        raise SuiteError(str(source), None, None, "no .jsonl or .csv files in this folder")
    cases = [c for p in paths for c in load_case_file(p, strict=False)]
    check_unique(cases, str(source))
    return Suite(name=source.stem, version="custom", cases=tuple(cases), source=str(source))


