#!/usr/bin/env bash
# Installs the system packages that building, exporting and testing need (Debian 12).
#   libtorch-dev          the C++ libtorch the addon links (1.13 on Debian 12)
#   libopenblas0-pthread  optimized BLAS; without it libtorch falls back to reference BLAS (~25x slower matmul)
#   python3-torch(vision) the same torch for TorchScript exports and Python reference checks
#   python3-pydicom       an independent DICOM reader and writer for the pixel checks
#   clang-format          C++ formatting check
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread
  python3 python3-torch python3-torchvision python3-numpy python3-venv python3-pydicom python3-pil
  clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all packages present"
else
  echo "install-system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
