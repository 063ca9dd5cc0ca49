#!/bin/sh
# The cpu_int ISA files (engine_<isa>.cpp) are compiled with their own -m
# flags. A function they emit as a weak (COMDAT) symbol, e.g. an inline
# destructor, may be the copy the linker keeps for every caller, also on a CPU
# without that ISA. They must emit none: their code lives in anonymous
# namespaces (local symbols).
# Usage: cpu_int_isa_symbols.sh NM OBJECTS   (OBJECTS: one ;-separated list, as CMake gives it)
nm=$1
status=0
checked=0
old_ifs=$IFS
IFS=';'
set -- $2
IFS=$old_ifs
for obj in "$@"; do
  case "$obj" in
    *engine_*) ;;
    *) continue ;;
  esac
  symbols=$("$nm" -C --defined-only "$obj") || { echo "cannot read $obj"; exit 1; }
  weak=$(printf '%s\n' "$symbols" | grep ' W ')
  checked=$((checked + 1))
  if [ -n "$weak" ]; then
    echo "$obj defines shared (weak) functions:"
    echo "$weak"
    status=1
  else
    echo "$obj: no shared functions"
  fi
done
[ "$checked" -gt 0 ] || { echo "no engine_<isa> object files given"; exit 1; }
exit $status
