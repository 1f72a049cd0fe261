#!/usr/bin/env bash
# Installs the Python runtimes the export tests run mixseg's files with, in
# .venv (PyPI, versions pinned): LiteRT (the official TFLite interpreter),
# onnxruntime and onnx (the checker), and TensorFlow (its converter is the
# independent check of mixseg's quantization). Idempotent; exits non-zero if pip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PINS=(ai-edge-litert==2.3.0 onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 tensorflow-cpu==2.21.0)
if ! /usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
if ! .venv/bin/python - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
then
  echo "setup-runtimes: installing ${PINS[*]} into .venv"
  .venv/bin/pip install -q "${PINS[@]}"
fi
