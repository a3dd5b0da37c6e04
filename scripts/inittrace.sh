#!/usr/bin/env bash
# inittrace.sh: what a binary's package initialisation costs, robust to a
# busy machine: runs `BIN ARGS...` N times (default 51) with
# GODEBUG=inittrace=1 and prints, per package, the median of its init time
# and allocation, then the median of the per-run sums.
#   scripts/inittrace.sh [-n N] [-top K] BIN [ARGS...]     (ARGS default: -version)
set -euo pipefail
n=51 top=15
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-top) top=$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: $0 [-n N] [-top K] BIN [ARGS...]" >&2; exit 2; }
bin=$1; shift
[ $# -gt 0 ] || set -- -version
for ((i = 0; i < n; i++)); do
	GODEBUG=inittrace=1 "$bin" "$@" </dev/null 2>&1 >/dev/null | awk -v r="$i" '/^init / {print r, $2, $5, $8}' || true
done | awk -v n="$n" -v top="$top" '
	function median(s,   a, k, i, j, x) {
		k = split(s, a, " ")
		for (i = 2; i <= k; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
		return a[int((k + 1) / 2)]
	}
	{ t[$2] = t[$2] " " $3; b[$2] = b[$2] " " $4; sum[$1] += $3; pk[$1]++ }
	END {
		for (p in t) printf "%-60s %7.3f ms %8d B\n", p, median(t[p]), median(b[p]) | "sort -k2 -n -r | head -" top
		close("sort -k2 -n -r | head -" top)
		s = ""; for (r in sum) s = s " " sum[r]
		k = 0; for (r in pk) { k = pk[r]; break }
		printf "median sum over %d runs: %.3f ms, %d packages\n", n, median(s), k
	}'
