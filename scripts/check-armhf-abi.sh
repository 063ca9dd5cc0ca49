#!/usr/bin/env bash
# Prints what armhf binaries need from the system they run on: the newest glibc
# (GLIBC_), libstdc++ (GLIBCXX_, CXXABI_) and libgcc (GCC_) symbol versions, and
# their shared libraries. Fails when a binary needs a newer glibc or libstdc++
# than the board image provides.
#
# Usage: scripts/check-armhf-abi.sh [--max-glibc V] [--max-glibcxx V] BINARY...
# The defaults are PYNQ v3.0's Ubuntu 22.04 (glibc 2.35, libstdc++ of GCC 12:
# GLIBCXX_3.4.30). PYNQ v2.7's Ubuntu 20.04 has glibc 2.31 and GLIBCXX_3.4.28.
set -euo pipefail

max_glibc=2.35
max_glibcxx=3.4.30
while [ $# -gt 0 ]; do
  case $1 in
    --max-glibc) max_glibc=$2; shift 2 ;;
    --max-glibcxx) max_glibcxx=$2; shift 2 ;;
    -*) echo "check-armhf-abi: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--max-glibc V] [--max-glibcxx V] BINARY..." >&2; exit 2; }
objdump=arm-linux-gnueabihf-objdump

# newest VERSION of symbol set PREFIX (GLIBC, GLIBCXX ...) in objdump -T output, or "-"
newest() { grep -oE "\\b$1_[0-9.]+\\b" <<<"$2" | sed "s/^$1_//" | sort -uV | tail -1 | grep . || echo -; }
# true when version $1 is newer than $2
newer() { [ "$1" != - ] && [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ]; }

status=0
for bin in "$@"; do
  [ -f "$bin" ] || { echo "check-armhf-abi: $bin: no such file" >&2; status=1; continue; }
  header=$($objdump -f "$bin" 2>&1) || { echo "check-armhf-abi: $bin: not a 32-bit ARM ELF file" >&2; status=1; continue; }
  grep -q 'elf32-littlearm' <<<"$header" || { echo "check-armhf-abi: $bin: not a 32-bit ARM binary" >&2; status=1; continue; }
  symbols=$($objdump -T "$bin" 2>/dev/null || true)
  glibc=$(newest GLIBC "$symbols")
  glibcxx=$(newest GLIBCXX "$symbols")
  needed=$($objdump -p "$bin" | awk '/NEEDED/ {printf "%s ", $2}')
  printf '%s: GLIBC_%s GLIBCXX_%s CXXABI_%s GCC_%s\n  needs: %s\n' "$bin" "$glibc" "$glibcxx" \
    "$(newest CXXABI "$symbols")" "$(newest GCC "$symbols")" "${needed:-(static)}"
  if newer "$glibc" "$max_glibc"; then
    echo "  FAIL: needs glibc $glibc, newer than $max_glibc:" \
      "$(grep -E "GLIBC_$glibc\\b" <<<"$symbols" | awk '{print $NF}' | sort -u | tr '\n' ' ')"
    status=1
  fi
  if newer "$glibcxx" "$max_glibcxx"; then
    echo "  FAIL: needs libstdc++ GLIBCXX_$glibcxx, newer than $max_glibcxx"
    status=1
  fi
done
exit $status
