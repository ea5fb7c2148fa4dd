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
out=$("$build"/mbpo test 2>&1); rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || status=1
sum "$out"
echo "$P passed, $F failed"
[ $status -eq 0 ] && [ $F -eq 0 ]
