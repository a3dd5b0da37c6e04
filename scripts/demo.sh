#!/usr/bin/env bash
# make demo: walk the real flow end to end in a temporary directory, with the
# binaries from bin/ on PATH. Every step is a real command; nothing is faked.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/cp-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
unset CONTROL_PLANE CONTROL_PLANE_SIGNING_KEY CONTROL_PLANE_VERIFY_KEY

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
field() { # field KEY: print the value of a top-level-ish "KEY":value from stdin
	grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2- | tr -d '"'
}

step "1. a signing key for checkpoints (cp-pkg keygen)"
run cp-pkg keygen --name demo-ops --out .
ls -l demo-ops.key demo-ops.pub

step "2. append entries: with flags, then an NDJSON stream (one durable group commit)"
run cp-ledger append --ledger audit.jsonl --event-type SESSION_START --submission-id WO-1 \
	--decision ALLOW --reason "operator opened a session" --metadata '{"agent":"builder"}'
printf '%s\n' \
	'{"event_type":"TOOL_CALL","submission_id":"WO-1","decision":"ALLOW","metadata":{"tool":"bash","args":["ls"]}}' \
	'{"event_type":"TOOL_CALL","submission_id":"WO-1","decision":"DENY","reason":"outside scope","metadata":{"tool":"rm"}}' \
	'{"event_type":"LLM_CALL","submission_id":"WO-1","decision":"ALLOW","prompts_used":["PRM-ADMIN-EXPLAIN-001"]}' \
	| run cp-ledger append --ledger audit.jsonl

step "3. query with a gojq filter"
run cp-ledger show --ledger audit.jsonl --where '.decision == "DENY"'

step "4. verify: every line re-hashed, every link and seq checked, Merkle root recomputed"
run cp-ledger verify --ledger audit.jsonl

step "5. a signed checkpoint (C2SP tlog-checkpoint as a signed note)"
run cp-ledger checkpoint --ledger audit.jsonl --sign-key demo-ops.key >/dev/null
cat audit.checkpoint
cp audit.checkpoint witness-copy.checkpoint

step "6. prove entry 2 is in the log, and check the proof offline with only the public key"
run cp-ledger prove --ledger audit.jsonl --seq 2 > proof.json
cat proof.json
printf '$ cp-ledger verify --verify-key demo-ops.pub < proof.json\n'
cp-ledger verify --verify-key demo-ops.pub < proof.json

step "7. the log grows; a consistency proof shows the old checkpoint is a prefix"
cp-ledger append --ledger audit.jsonl --event-type SESSION_END --submission-id WO-1 >/dev/null
run cp-ledger consistency --ledger audit.jsonl --from 4 | cp-ledger verify --trusted-checkpoint witness-copy.checkpoint --verify-key demo-ops.pub

step "8. someone edits history: entry 1's decision ALLOW → DENY"
sed -i '2s/"decision":"ALLOW"/"decision":"DENY"/' audit.jsonl
sed -n 2p audit.jsonl | cut -c1-110
printf '$ cp-ledger verify --ledger audit.jsonl --verify-key demo-ops.pub\n'
if cp-ledger verify --ledger audit.jsonl --verify-key demo-ops.pub > verdict.json 2> verdict.err; then
	echo "demo: error: the tampered ledger verified" >&2
	exit 1
else
	code=$?
fi
cat verdict.err
printf 'exit status %s; first bad seq: %s\n' "$code" "$(field first_bad_seq < verdict.json)"

step "9. a forger rewrites history consistently (new hashes, new tree): the witness's checkpoint catches it"
sed -i '2s/"decision":"DENY"/"decision":"ALLOW"/' audit.jsonl   # undo the crude edit
mkdir forged && (
	cd forged
	cp-ledger append --ledger audit.jsonl --event-type SESSION_START --submission-id WO-1 >/dev/null
	cp-ledger append --ledger audit.jsonl --event-type NOTHING_TO_SEE --submission-id WO-1 >/dev/null
	for _ in 1 2 3; do cp-ledger append --ledger audit.jsonl --event-type TOOL_CALL >/dev/null; done
)
cp forged/audit.jsonl forged/audit.tlog .
printf '$ cp-ledger verify --ledger audit.jsonl --trusted-checkpoint witness-copy.checkpoint --verify-key demo-ops.pub\n'
if cp-ledger verify --ledger audit.jsonl --trusted-checkpoint witness-copy.checkpoint --verify-key demo-ops.pub > verdict.json 2> verdict.err; then
	echo "demo: error: the forged ledger verified" >&2
	exit 1
fi
cat verdict.err

printf '\ndemo: ok (worked in %s, now removed)\n' "$work"
