"""The package is ruff-clean and mypy-clean (DESIGN.md style rule 9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import need

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"auditor": "auditor", "remediation": "remediation", "suites": "suites", "reports_templates": "reports_templates"}


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run([ruff, "check", "auditor", "remediation", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean(tmp_path):
    need("mypy")
    # The folders install under the refuseu namespace via package-dir; mirror that layout for mypy.
    ns = tmp_path / "refuseu"
    ns.mkdir()
    for name, folder in PACKAGES.items():
        (ns / name).symlink_to(ROOT / folder)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / ".mypy"),
         "-p", "refuseu.auditor", "-p", "refuseu.remediation"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
