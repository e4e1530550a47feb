#!/usr/bin/env bash
# run-steps.sh NAME CMD [NAME CMD ...]: runs every step, even after a
# failure, and prints one summary; exits non-zero if any step failed.
set -u
names=() results=() times=()
fail=0
while [ $# -ge 2 ]; do
	name=$1 cmd=$2
	shift 2
	echo "=== $name"
	start=$(date +%s)
	if bash -c "$cmd"; then r=PASS; else r=FAIL; fail=1; fi
	names+=("$name") results+=("$r") times+=($(( $(date +%s) - start )))
done
echo
echo "=== summary"
for i in "${!names[@]}"; do
	printf '%-4s %5ss  %s\n' "${results[$i]}" "${times[$i]}" "${names[$i]}"
done
exit $fail
