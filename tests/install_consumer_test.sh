#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds examples/cpp_consumer against
# it with find_package(busi_infer), and classifies one image with the installed
# default model: proves the exported targets and installed models are complete.
set -euo pipefail
build=$1 source=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -S "$source/examples/cpp_consumer" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$prefix/consumer" > /dev/null
image="$prefix/gray.png"
/usr/bin/python3 -c 'import sys, cv2, numpy; cv2.imwrite(sys.argv[1], numpy.full((40, 50), 99, numpy.uint8))' "$image"
# The installed default model must be found relative to the install, not the source tree.
BUSI_MODEL_DIR="$prefix/share/busi-infer/models" "$prefix/consumer/classify_one" "$image" cpu_int | tee /dev/stderr | grep -E ": (normal|benign|malignant) "
