#!/usr/bin/env bash
# Installs the Debian packages percep-dist builds against. Idempotent: packages already
# installed are skipped, and `apt-get update` runs at most once, only when something is missing.
#
#   OpenBLAS (cblas, OpenMP build: shares oneDNN's thread pool)  libopenblas-dev libopenblas-openmp-dev
#   oneDNN 2.x  libdnnl-dev    HDF5 (loss-network weights, checkpoints)  libhdf5-dev
#   Open MPI (data-parallel runtime)  libopenmpi-dev openmpi-bin    pkg-config for SwiftPM
#   libjpeg-turbo (JPEG images of `synth coco`, `synth seg`)  libturbojpeg0-dev
#   libspng (PNG label maps, Cityscapes images, depth maps)  libspng-dev
set -euo pipefail

packages=(libopenblas-dev libopenblas-openmp-dev libdnnl-dev libhdf5-dev libopenmpi-dev openmpi-bin libturbojpeg0-dev libspng-dev zlib1g-dev pkg-config)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.x toolchain required)" >&2; exit 1; }
