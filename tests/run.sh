#!/bin/sh
# Runs every C test binary under $1/tests and the Lua specs (mbpo test), then prints one
# line "N passed, N failed" summing them. Exit status 0 only when nothing failed.
build=${1:-build}
P=0; F=0; status=0
sum() { # $1 = output of one runner; adds its last "N passed, N failed" line
  line=$(printf '%s\n' "$1" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then F=$((F + 1)); return; fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  P=$((P + p)); F=$((F + f))
}
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  out=$("$t" 2>&1); rc=$?
  printf '%s: %s\n' "${t##*/}" "$(printf '%s\n' "$out" | tail -n 1)"
  [ $rc -eq 0 ] || { printf '%s\n' "$out" | grep -v '^[0-9]* passed' | sed 's/^/    /'; status=1; }
  sum "$out"
done
# the forced AVX2 path (MBPO_ISA=avx2) where the default is AVX-512: the numerical C tests and
# the golden run again (the bits must be the same on both paths)
for t in test_nn test_ensemble test_sac test_simd; do
  [ -x "$build/tests/$t" ] || continue
  out=$(MBPO_ISA=avx2 "$build/tests/$t" 2>&1); rc=$?
  printf '%s (MBPO_ISA=avx2): %s\n' "$t" "$(printf '%s\n' "$out" | tail -n 1)"
  [ $rc -eq 0 ] || { printf '%s\n' "$out" | grep -v '^[0-9]* passed' | sed 's/^/    /'; status=1; }
  sum "$out"
done
# the ensemble's training step member by member at every thread count (the default only at
# one thread; src/nn/ensemble.c): the same bits for any thread count
if [ -x "$build/tests/test_ensemble" ]; then
  out=$(MBPO_ENS_MEMBER_SECTIONS=1 "$build/tests/test_ensemble" 2>&1); rc=$?
  printf 'test_ensemble (MBPO_ENS_MEMBER_SECTIONS=1): %s\n' "$(printf '%s\n' "$out" | tail -n 1)"
  [ $rc -eq 0 ] || { printf '%s\n' "$out" | grep -v '^[0-9]* passed' | sed 's/^/    /'; status=1; }
  sum "$out"
fi
out=$(MBPO_ISA=avx2 "$build"/mbpo test tests/lua/golden_spec.lua 2>&1); rc=$?
printf 'golden_spec.lua (MBPO_ISA=avx2): %s\n' "$(printf '%s\n' "$out" | tail -n 1)"
[ $rc -eq 0 ] || { printf '%s\n' "$out" | sed 's/^/    /'; status=1; }
sum "$out"
out=$("$build"/mbpo test 2>&1); rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || status=1
sum "$out"
echo "$P passed, $F failed"
[ $status -eq 0 ] && [ $F -eq 0 ]
