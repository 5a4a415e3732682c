#!/usr/bin/env bash
# Runs scripts/export_backbones.py in .venv, a virtual environment on top of Debian's
# torch/torchvision (python3-torch, python3-torchvision) that adds timm (needed for beit).
# Creates .venv on first use; later runs reuse it. All arguments go to the Python script:
#   scripts/export_backbones.sh --help
#   scripts/export_backbones.sh all --out models
# Models other than beit also export with plain /usr/bin/python3 scripts/export_backbones.py.
#
# The packages are installed with --no-deps so that pip never replaces Debian's torch 1.13
# with a newer torch wheel from the index. Override the interpreter with PYTHON=..., the
# venv location with VENV=...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-/usr/bin/python3}"

# timm and its pure-Python dependencies (huggingface-hub is only used for downloads;
# 1.x uses httpx, 2.x needs httpx2/httpcore2).
PACKAGES=(
  timm "huggingface-hub<2" safetensors pyyaml filelock fsspec packaging tqdm
  "typing-extensions>=4.12" httpx httpcore h11 anyio sniffio click idna certifi
)

venv_ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'EOF' >/dev/null 2>&1
import sys, torch, torchvision, timm, huggingface_hub.hf_api
sys.exit(0 if not torch.__file__.startswith(sys.prefix) else 1)
EOF
}

if ! venv_ready; then
  echo "export_backbones.sh: setting up $VENV (timm on top of $PYTHON's torch)" >&2
  if ! "$PYTHON" -c 'import torch, torchvision' >/dev/null 2>&1; then
    echo "export_backbones.sh: $PYTHON has no torch/torchvision; on Debian run scripts/install-system-deps.sh" >&2
    exit 1
  fi
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  fi
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "${PACKAGES[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "export_backbones.sh: pip install failed" >&2
    exit 1
  fi
  if ! venv_ready; then
    "$VENV/bin/python" -c \
      'import torch, timm, huggingface_hub.hf_api; print("torch", torch.__version__, torch.__file__)' >&2 || true
    echo "export_backbones.sh: $VENV is not usable (timm missing or torch not the system one)" >&2
    exit 1
  fi
  "$VENV/bin/python" -c \
    'import torch, timm; print("export_backbones.sh: venv ready: torch", torch.__version__, "timm", timm.__version__)' \
    >&2
fi

exec "$VENV/bin/python" "$ROOT/scripts/export_backbones.py" "$@"
