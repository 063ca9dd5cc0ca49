#!/usr/bin/env bash
# Installs every Debian 12 package busi-infer needs to build, test, train and
# benchmark. Idempotent: packages already present are skipped, so CI can call it
# on every run. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git
  # runtime core and CLI
  libopencv-dev libboost-program-options-dev nlohmann-json3-dev zlib1g-dev
  # the image decoder
  libpng-dev libjpeg62-turbo-dev libdeflate-dev
  # the fpga backend's .hwh reader (linked statically)
  libpugixml-dev
  # tests (python3-skimage: sample photographs and medical images for the
  # negatives the out-of-distribution gate must refuse, training/busi_train/negatives.py)
  libgtest-dev libgmock-dev python3-pytest python3-skimage
  # cpu_ref float baseline
  libdnnl-dev
  # fpga backend: XRT buffer objects (PYNQ >= 2.7)
  libxrt-dev
  # Python bindings
  pybind11-dev python3-dev python3-numpy
  # the virtual environment for the PyPI packages (scripts/install-python-deps.sh)
  python3-venv
  # training, export, equivalence checks
  python3-torch python3-torchvision python3-opencv python3-onnx
  # notebook example run headless
  jupyter-nbconvert python3-ipykernel python3-matplotlib
  # ARM (PYNQ-Z1, armhf) cross build and emulated tests
  crossbuild-essential-armhf qemu-user
  # dashboard test
  chromium
  # libFuzzer targets for the loaders (scripts/fuzz.sh)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# What Debian lacks (qonnx, brevitas, onnxruntime, scikit-build-core), pinned in
# requirements/python.txt, into the virtual environment .venv.
"$(dirname "$0")/install-python-deps.sh"
