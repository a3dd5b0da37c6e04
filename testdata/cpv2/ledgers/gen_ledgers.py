#!/usr/bin/env python3
"""Generate CPv2 ledger fixtures (issue 19): ledgers as the Python Control
Plane v2 wrote them, in both entry_hash forms, sound and broken.

Run from this directory:  python3 gen_ledgers.py
Outputs (committed; tests only read them; deterministic):
  governance.jsonl             HO3 governance ledger, bare hex entry_hash
  session_evidence.jsonl       agent runtime session evidence, "sha256:" + hex
  session_mixed.jsonl          a runtime upgrade mid-ledger: bare hex, then sha256:
  governance_broken.jsonl      governance.jsonl, line 4's reason edited, line 9 deleted
  session_evidence_broken.jsonl  session_evidence.jsonl, line 2's tokens edited,
                               line 5's previous_hash written without its prefix,
                               line 7's entry_hash upper-case "SHA256:" prefix
BROKEN.json                    {file: [[line, code], ...]}: what verify must name
"""
import hashlib
import json


def digest(e):
    return hashlib.sha256(
        json.dumps(e, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def chain(entries, prefixed):
    prev = ""
    for i, e in enumerate(entries):
        e["previous_hash"] = prev
        h = digest(e)
        e["entry_hash"] = ("sha256:" + h) if prefixed(i) else h
        prev = e["entry_hash"]
    return entries


def ts(i):
    return "2025-11-%02dT09:%02d:%02d.%06dZ" % (3 + i // 20, (7 * i) % 60, (13 * i) % 60, 1000 * i + 17)


def governance():
    events = [
        ("FRAMEWORK_REGISTERED", "FMWK-000", "approve", "framework registered by admin", {"version": "1.0.0", "path": "frameworks/FMWK-000_governance_kernel.md"}),
        ("FRAMEWORK_REGISTERED", "FMWK-001", "approve", "framework registered by admin", {"version": "1.1.0", "path": "frameworks/FMWK-001_package_law.md"}),
        ("SPEC_REGISTERED", "SPEC-GATE-001", "approve", "spec registered", {"framework_id": "FMWK-001", "plane_id": "ho3"}),
        ("INSTALL_STARTED", "PAK-GATES-001", "pending", "install requested", {"package_type": "module", "files": 7}),
        ("GATE_PASSED", "PAK-GATES-001", "pass", "G0: all 7 assets declared, hashes match", {"gate": "G0", "duration_ms": 12.5}),
        ("GATE_PASSED", "PAK-GATES-001", "pass", "G1: spec SPEC-GATE-001 active", {"gate": "G1", "duration_ms": 0.8}),
        ("INSTALLED", "PAK-GATES-001", "approve", "installed into HO3", {"version": "0.3.1", "manifest_hash": "sha256:" + "ab" * 32}),
        ("WO_CREATED", "WO-2025-1103-001", "approve", "work order for the docs refresh", {"scope": ["docs/**"], "budget": {"tokens": 200000, "usd": 4.0}}),
        ("WO_APPROVED", "WO-2025-1103-001", "approve", "approved — Zürich ops review ✓", {"approver": "maria.keller", "note": "ok <scope> & budget"}),
        ("TURN_RECORDED", "WO-2025-1103-001", "allow", "turn 1 recorded", {"session_id": "SES-7f3a9c21", "tokens_in": 1834, "tokens_out": 412}),
        ("GATE_FAILED", "PAK-DOCS-002", "reject", "G0: docs/index.md not declared", {"gate": "G0", "undeclared": ["docs/index.md"]}),
        ("INSTALL_FAILED", "PAK-DOCS-002", "reject", "gate G0 failed", {"exit": 1, "ratio": 0.0}),
    ]
    out = []
    for i, (ev, sub, dec, reason, meta) in enumerate(events):
        out.append({"id": "LED-%08x" % (0x5f3a0000 + i), "timestamp": ts(i), "event_type": ev,
                    "submission_id": sub, "decision": dec, "reason": reason,
                    "prompts_used": ["PRM-GOV-001"] if ev.startswith("WO_") else [],
                    "metadata": meta})
    return chain(out, lambda i: False)


def session(n=10):
    out = []
    for i in range(n):
        out.append({"entry_id": "EVD-%04d" % i, "timestamp": ts(i), "event_type": ["TURN_START", "TOOL_CALL", "TOOL_RESULT", "LLM_CALL", "TURN_END"][i % 5],
                    "session_id": "SES-7f3a9c21", "work_order_id": "WO-2025-1103-001", "agent_id": "agent.docs-writer",
                    "turn": 1 + i // 5, "input_hash": "sha256:" + hashlib.sha256(b"in%d" % i).hexdigest(),
                    "output_hash": "sha256:" + hashlib.sha256(b"out%d" % i).hexdigest(),
                    "tokens": {"in": 100 * i + 7, "out": 40 * i, "cost_usd": round(0.0003 * i, 6)},
                    "tool": None if i % 5 not in (1, 2) else {"name": "read_file", "args": {"path": "docs/guide_%d.md" % i}},
                    "ok": i != 7})
    return out


def write(name, entries):
    with open(name, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")


def main():
    broken = {}
    gov = governance()
    write("governance.jsonl", gov)
    ses = chain(session(), lambda i: True)
    write("session_evidence.jsonl", ses)
    write("session_mixed.jsonl", chain(session(), lambda i: i >= 4))

    g = [dict(e) for e in gov]
    g[4]["reason"] = "G0: all 7 assets declared"  # edited after the fact
    del g[9]                                       # a line deleted
    write("governance_broken.jsonl", g)
    broken["governance_broken.jsonl"] = [[4, "HASH_MISMATCH"], [9, "CHAIN_BROKEN"]]

    s = [dict(e) for e in ses]
    s[2]["tokens"] = {"in": 1, "out": 1, "cost_usd": 0.0}
    s[5]["previous_hash"] = s[5]["previous_hash"][len("sha256:"):]
    s[5]["entry_hash"] = "sha256:" + digest({k: v for k, v in s[5].items() if k != "entry_hash"})
    s[6]["previous_hash"] = s[5]["entry_hash"]
    s[6]["entry_hash"] = "sha256:" + digest({k: v for k, v in s[6].items() if k != "entry_hash"})
    s[7]["previous_hash"] = s[6]["entry_hash"]
    s[7]["entry_hash"] = "SHA256:" + digest({k: v for k, v in s[7].items() if k != "entry_hash"})
    s[8]["previous_hash"] = s[7]["entry_hash"]
    s[8]["entry_hash"] = "sha256:" + digest({k: v for k, v in s[8].items() if k != "entry_hash"})
    s[9]["previous_hash"] = s[8]["entry_hash"]
    s[9]["entry_hash"] = "sha256:" + digest({k: v for k, v in s[9].items() if k != "entry_hash"})
    write("session_evidence_broken.jsonl", s)
    broken["session_evidence_broken.jsonl"] = [[2, "HASH_MISMATCH"], [5, "CHAIN_BROKEN"], [7, "HASH_MISMATCH"]]
    with open("BROKEN.json", "w") as f:
        json.dump(broken, f, indent=1, sort_keys=True)
        f.write("\n")


main()
