"""RunStore: one run directory. Records are appended and flushed one line at a time, so a killed run
loses at most what was in flight, and a rerun skips every id already stored."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GENERATIONS = "generations.jsonl"
VERDICTS = "verdicts.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"


def now() -> str:
    """A UTC timestamp for manifests and records."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read records. A torn last line (a run killed mid-write) is ignored; any other bad line is an error."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines) and not line.endswith("\n"):
                return  # torn write from a killed run: that record is simply redone
            raise RefuseuError(f"{path}:{n}: invalid JSON record: {exc.msg}") from None
        if not isinstance(rec, dict) or "id" not in rec:
            raise RefuseuError(f"{path}:{n}: field 'id' is missing")
        yield rec


class RunStore:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    # -- paths
    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def generations_path(self) -> Path:
        return self.dir / GENERATIONS

    def verdicts_path(self, judge: str | None = None) -> Path:
        """The primary judge writes ``verdicts.jsonl``; others ``verdicts.<judge>.jsonl``."""
        primary = self.read_manifest().get("judge") if self.manifest_path.exists() else None
        if judge is None or judge == primary:
            return self.dir / VERDICTS
        return self.dir / f"verdicts.{judge}.jsonl"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    # -- manifest
    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise RefuseuError(f"{self.dir} is not a refuseu run directory (no {MANIFEST})") from None
        except json.JSONDecodeError as exc:
            raise RefuseuError(f"{self.manifest_path}: invalid JSON: {exc.msg}") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    # -- records
    def append(self, path: Path, records: list[dict[str, Any]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()

    def append_generations(self, records: list[dict[str, Any]]) -> None:
        self.append(self.generations_path, records)

    def append_verdicts(self, records: list[dict[str, Any]], judge: str | None = None) -> None:
        self.append(self.verdicts_path(judge), records)

    def generations(self) -> dict[str, dict[str, Any]]:
        """id -> latest record (a retried error is superseded by its later success)."""
        return {rec["id"]: rec for rec in read_jsonl(self.generations_path)}

    def verdicts(self, judge: str | None = None) -> dict[str, dict[str, Any]]:
        return {rec["id"]: rec for rec in read_jsonl(self.verdicts_path(judge))}

    def judges_present(self) -> list[str]:
        """Judge ids that have verdict files in this run, primary first."""
        out = []
        if (self.dir / VERDICTS).exists():
            out.append(self.read_manifest().get("judge", "markers"))
        for p in sorted(self.dir.glob("verdicts.*.jsonl")):
            out.append(p.name[len("verdicts."):-len(".jsonl")])
        return out
