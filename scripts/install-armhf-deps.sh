#!/usr/bin/env bash
# Builds the armhf sysroot the cross build (cmake/toolchains/armhf-linux-gnueabihf.cmake)
# links against and qemu-arm runs the armhf tests in: Debian 12's armhf -dev
# packages, downloaded with apt and unpacked with dpkg-deb into one folder.
#
# Why a private sysroot instead of `dpkg --add-architecture armhf`: multiarch
# needs every Multi-Arch: same package at the exact same version for amd64 and
# armhf, so it breaks as soon as the host's amd64 packages come from another
# snapshot than the mirror's armhf index (it did on the development machine:
# libssl3, linux-libc-dev, libpng16-16 ... all skewed), and a foreign
# architecture whose index fails to download makes every later `apt-get update`
# on the machine exit non-zero. This way the host's dpkg state is never touched.
#
# Usage: scripts/install-armhf-deps.sh [--armnn]   (sysroot in $BUSI_ARMHF_SYSROOT,
#        default /opt/busi-armhf/sysroot; apt state beside it). Idempotent: does
#        nothing when the sysroot already holds this package list.
#        --armnn also adds Debian 12's armhf Arm NN (20.08, its reference
#        backend CpuRef: Debian builds no CpuAcc/NEON backend for armhf) for
#        benchmarks/armhf/count-insns.sh; neither the build nor its tests need it.
set -euo pipefail
with_armnn=false
case "${1:-}" in
  --armnn) with_armnn=true ;;
  "") ;;
  *) echo "usage: scripts/install-armhf-deps.sh [--armnn]" >&2; exit 2 ;;
esac

root=${BUSI_ARMHF_SYSROOT:-/opt/busi-armhf/sysroot}
state=$(dirname "$root")/apt
packages=(
  # runtime core: image decoding and pre-processing, the model header, CRC.
  # libopencv-dev (all modules, ~210 MB of .debs) rather than only the core,
  # imgproc and imgcodecs -dev packages (~100 MB) because only it ships
  # OpenCVConfig.cmake, which find_package(OpenCV) needs.
  libopencv-dev
  nlohmann-json3-dev zlib1g-dev
  # the image decoder (libpng, libjpeg, libdeflate), linked statically into the board package
  libpng-dev libjpeg62-turbo-dev libdeflate-dev
  # busi-infer CLI
  libboost-program-options-dev
  # tests
  libgtest-dev libgmock-dev
)
# Added to an existing sysroot without rebuilding it (so a sysroot shared by
# several checkouts is never removed under another's build): the .hwh reader's
# XML library, linked statically.
extras=(libpugixml-dev libpugixml1v5)
extras_marker=usr/include/pugixml.hpp
armnn=(libarmnn-dev libarmnn22 libarmnn-cpuref-backend22)
armnn_marker=usr/include/armnn/INetwork.hpp
stamp="$root/.busi-armhf-packages"
state_ready() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ]; }
armnn_ready() { ! $with_armnn || [ -f "$root/$armnn_marker" ]; }
if state_ready && [ -f "$root/$extras_marker" ] && armnn_ready; then
  echo "install-armhf-deps: sysroot $root is up to date"
  exit 0
fi

command -v apt-get >/dev/null || { echo "install-armhf-deps: needs apt-get (Debian 12)" >&2; exit 1; }
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" 2>/dev/null && [ -w "$state" ] ||
  { echo "install-armhf-deps: cannot write $state (run as root, or set BUSI_ARMHF_SYSROOT to a writable folder)" >&2; exit 1; }
: > "$state/status"
# apt resolves for armhf alone against an empty package database, so it picks
# the whole run-time closure (libc6 included) that qemu-arm needs.
apt_opts=(
  -o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status"
  -o "Dir::Cache=$state/cache" -o "Dir::Cache::archives=$state/cache/archives"
  -o APT::Architecture=armhf -o "APT::Architectures::=armhf"
  -o APT::Install-Recommends=false -o APT::Install-Suggests=false
  -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)"
)
# add_packages NAME... : downloads them (with what they need) and unpacks the
# named ones and, for Arm NN, its libraries (libarmnn*) into the sysroot.
add_packages() {
  apt-get "${apt_opts[@]}" install -y -q --download-only "$@" >"$state/extras.log" 2>&1 ||
    { cat "$state/extras.log" >&2; exit 1; }
  for p in "$@"; do
    dpkg-deb -x "$(ls "$state"/cache/archives/"${p}"_*_armhf.deb | head -1)" "$root"
  done
  echo "install-armhf-deps: added $* to $root"
}
add_extras() {
  [ -f "$root/$extras_marker" ] || add_packages "${extras[@]}"
  if ! armnn_ready; then
    add_packages "${armnn[@]}"
    for deb in "$state"/cache/archives/libarmnn*_armhf.deb; do dpkg-deb -x "$deb" "$root"; done
  fi
}
if state_ready; then
  add_extras
  exit 0
fi
start=$(date +%s)
# A failed index (e.g. a security mirror caught mid-sync) is reported but not
# fatal as long as the main suite's armhf index came down.
if ! apt-get "${apt_opts[@]}" update -q >"$state/update.log" 2>&1; then
  grep -E '^(E|W):' "$state/update.log" >&2 || true
  ls "$state/lists/"*_main_binary-armhf_Packages* >/dev/null 2>&1 ||
    { echo "install-armhf-deps: no armhf package index could be downloaded" >&2; exit 1; }
  echo "install-armhf-deps: warning: some armhf indexes failed (above); using the rest" >&2
fi
apt-get "${apt_opts[@]}" clean
apt-get "${apt_opts[@]}" install -y -q --download-only "${packages[@]}" >"$state/install.log" 2>&1 ||
  { cat "$state/install.log" >&2; exit 1; }

rm -rf "$root"
mkdir -p "$root"
debs=("$state"/cache/archives/*.deb)
for deb in "${debs[@]}"; do
  dpkg-deb -x "$deb" "$root"
done
# Absolute symlinks (libfoo.so -> /lib/arm-linux-gnueabihf/libfoo.so.1) would
# point into the host; re-point them inside the sysroot.
find "$root" -type l -lname '/*' | while read -r link; do
  ln -sfn "$root$(readlink "$link")" "$link"
done
# What update-alternatives does in libblas3's and liblapack3's postinst (which
# dpkg-deb -x does not run): the reference BLAS/LAPACK as libblas.so.3/liblapack.so.3.
for alt in blas lapack; do
  ln -sfn "$alt/lib$alt.so.3" "$root/usr/lib/arm-linux-gnueabihf/lib$alt.so.3"
done
add_extras
echo "${packages[*]}" > "$stamp"
echo "install-armhf-deps: ${#debs[@]} packages ($(du -sm "$state/cache/archives" | cut -f1) MB) unpacked to $root ($(du -sm "$root" | cut -f1) MB) in $(( $(date +%s) - start )) s"
