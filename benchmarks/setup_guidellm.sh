#!/usr/bin/env bash
# Create the guidellm virtualenv used by benchmarks/guidellm_crosscheck.py.
#
# guidellm pins its own transformers/datasets/torch stack, so it lives apart from the project's
# .venv, under .lodestar/guidellm-venv (ignored by git, like all of .lodestar/). torch is
# installed first from the CPU wheel the project uses, so pip does not pull a CUDA build.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GUIDELLM_VENV:-.lodestar/guidellm-venv}"
GUIDELLM_VERSION="${GUIDELLM_VERSION:-0.8.1}"
TORCH_VERSION="$(sed -n 's/^ *"torch==\([^"]*\)".*/\1/p' pyproject.toml)"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3.11 -m venv "$VENV" || python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION}"
"$VENV/bin/python" -m pip install -q "guidellm==${GUIDELLM_VERSION}" "torch==${TORCH_VERSION}"
"$VENV/bin/guidellm" --version 2>/dev/null || "$VENV/bin/python" -c "import guidellm; print('guidellm', guidellm.__version__)"
