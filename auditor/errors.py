"""Errors that the CLI turns into one clear line and exit code 2 (anything else is a crash: exit 3)."""

from __future__ import annotations

from pathlib import Path

_RUN_DIR: list[Path] = []


def note_run_dir(path: str | Path) -> None:
    """Remember the directory the current command writes to, so a crash can leave its traceback there."""
    _RUN_DIR[:] = [Path(path)]


def current_run_dir() -> Path | None:
    return _RUN_DIR[0] if _RUN_DIR else None


class RefuseuError(Exception):
    """A usage, configuration or runtime problem the user can fix. The CLI prints it and exits 2."""

    exit_code = 2


class SuiteError(RefuseuError):
    """A suite file is malformed. The message names file:line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {problem}".replace(": ", ": ", 1))
        self.path, self.line, self.field, self.problem = path, line, field, problem


class MissingExtraError(RefuseuError):
    """An optional dependency is missing; the message names the pip install line."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not installed. Install it with: {install}")
        self.install = install
