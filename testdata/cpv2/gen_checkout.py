#!/usr/bin/env python3
"""Generate checkout/, a small CPv2 checkout as cp-install import-cpv2 reads
it (issue 19; the README's "Coming from CPv2"):

  frameworks/*.md                     every metadata form (copies of ../frameworks)
                                      and one that states no id (refused)
  specs/<SPEC-ID>/manifest.yaml|json  SPEC-DOCS-002 depends on SPEC-GATE-001 (and
                                      sorts before it); SPEC-ELSEWHERE-001 is for
                                      plane ho2 (refused)
  installed/<PKG-ID>/manifest.json    an installed package: files at the root
  packages/<PKG-ID>/manifest.json     packages: files beside the manifest
  ledger/, ledgers/, planes/.../ledger/  ledgers in both hash forms, broken lines,
                                      a malformed one

Every CPv2 package type (module, library, baseline, documentation) and every
classification appears in a package that installs; PKG-CHANGED-001 (a file
edited after its manifest), PKG-KERNEL-002 (type kernel) and PAK-FOREIGN-001
(not an id of ours) are refused. Run from this directory:
python3 gen_checkout.py (deterministic).
"""
import hashlib
import json
import os
import shutil

OUT = "checkout"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write(path, data, mode=0o644):
    path = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


shutil.rmtree(OUT, ignore_errors=True)

for fw in ["FMWK-000_governance_kernel.md", "FMWK-001_package_law.md", "FMWK-002_agent_runtime.md", "FMWK-003_naming_conventions.md"]:
    write("frameworks/" + fw, open("frameworks/" + fw).read())
write("frameworks/governance_notes.md", open("frameworks/refused/governance_notes.md").read())

write("specs/SPEC-GATE-001/manifest.yaml", """# SPEC-GATE-001: the gate runner (CPv2 spec manifest)
spec_id: SPEC-GATE-001
framework_id: FMWK-001
title: Gate runner
version: 1.2.0
status: active
plane_id: HO3
tier: HO3
assets:
  - modules/gates/**
  - schemas/gate_result.schema.json
  - config/gates.json
  - tests/**
  - docs/gates.md
invariants:
  - Every gate decision is written to the HO3 ledger before the install continues.
interfaces:
  - name: run_gates
    kind: cli
    command: "python -m gates.run --plane ho3 --package PKG"
acceptance:
  - id: AC-GATE-1
    description: An undeclared file in a package fails G0 with the file's path.
    test: tests/test_g0.py::test_undeclared_file
non_goals:
  - Choosing which packages to install.
dependencies:
  - FMWK-000
  - FMWK-001@>=1.1.0
  - pyyaml>=6.0
""")
write("specs/SPEC-DOCS-002/manifest.yaml", """spec_id: SPEC-DOCS-002
framework_id: FMWK-002
title: Agent-written documentation
version: 0.3.0
status: draft
plane_id: ho3
tier: ho1
assets:
  - docs/agents/**
acceptance:
  - Every page links back to docs/index.md.
non_goals:
  - API reference generation.
dependencies:
  - SPEC-GATE-001@^1.0.0
  - framework_id: FMWK-000
""")
write("specs/SPEC-PLATFORM-004/manifest.json", json.dumps({
    "spec_id": "SPEC-PLATFORM-004", "framework_id": "FMWK-000", "title": "Platform tooling and handbook", "version": "1.0.0",
    "status": "active", "plane_id": "ho3", "tier": "HO3",
    "assets": ["lib/**", "scripts/**", "frameworks/**", "specs/**", "docs/**", "config/baseline.json", "policies/**", "schemas/handbook/**"],
    "invariants": ["Tooling never writes the ledger."],
    "interfaces": ["lib/docs_tools/render.py: render(md) -> str"],
    "acceptance": [{"id": "AC-PL-1", "description": "render() is idempotent."}],
    "non_goals": ["Hosting the handbook."],
    "dependencies": [{"id": "SPEC-GATE-001", "version": "^1.0.0"}, "FMWK-000"],
}, indent=2) + "\n")
write("specs/SPEC-ELSEWHERE-001/manifest.yaml", """spec_id: SPEC-ELSEWHERE-001
framework_id: FMWK-001
title: A spec for another plane
version: 1.0.0
status: active
plane_id: ho2
tier: ho2
assets:
  - modules/coordinator/**
""")

# Packages: (id, layout, type, spec, version, extra, files, edited)
PACKAGES = [
    ("PKG-GATES-001", "installed", "module", "SPEC-GATE-001", "0.3.1", {"plane_id": "ho3", "tier": "HO3", "dependencies": ["PKG-DOCS-TOOLS-001@>=0.2.0", "python>=3.11"]}, [
        ("modules/gates/run.py", "module", "import sys\n\n\ndef main():\n    return 0\n\n\nif __name__ == '__main__':\n    sys.exit(main())\n"),
        ("modules/gates/g0.py", "gate", "def g0(manifest, files):\n    return sorted(set(files) - {a['path'] for a in manifest['assets']})\n"),
        ("schemas/gate_result.schema.json", "spec_asset", '{"type": "object", "required": ["gate", "passed"]}\n'),
        ("config/gates.json", "registry", '{"order": ["G0", "G1", "G5"]}\n'),
        ("tests/test_g0.py", "test", "from modules.gates.g0 import g0\n\n\ndef test_undeclared_file():\n    assert g0({'assets': []}, ['x']) == ['x']\n"),
        ("docs/gates.md", "documentation", "# Gates\n\nG0 checks the declaration.\n"),
    ], None),
    ("PKG-DOCS-TOOLS-001", "packages", "library", "SPEC-PLATFORM-004", "0.2", {"plane_id": "HO3", "tier": "HO3", "dependencies": []}, [
        ("lib/docs_tools/render.py", "library", "def render(md):\n    return md.strip() + '\\n'\n"),
        ("frameworks/notes/FMWK-003_naming_conventions.md", "law_doc", "# FMWK-003: Naming Conventions\n"),
        ("specs/handbook/manifest.yaml", "spec_manifest", "spec_id: SPEC-PLATFORM-004\n"),
        ("docs/guide.md", "doc", "# Guide\n\nRun render().\n"),
        ("scripts/build_docs.sh", "other", "#!/bin/sh\nexec python -m docs_tools.render \"$@\"\n"),
    ], None),
    ("PKG-BASELINE-001", "packages", "baseline", "SPEC-PLATFORM-004", "v1.0.0", {"tier": "HO3", "prefixed": True, "dependencies": []}, [
        ("config/baseline.json", "config", '{"profile": "default"}\n'),
        ("policies/base.cedar", "policy", "forbid(principal, action, resource) when { false };\n"),
        ("lib/prompts/reviewer.md", "prompt", "You are a careful reviewer.\n"),
        ("scripts/check.sh", "script", "#!/bin/sh\nexit 0\n"),
    ], None),
    ("PKG-HANDBOOK-001", "packages", "documentation", "SPEC-PLATFORM-004", "1.4.0", {"plane_id": "ho3", "dependencies": []}, [
        ("docs/handbook/index.md", "documentation", "# Handbook\n"),
        ("docs/handbook/glossary.md", "glossary", "# Glossary\n\nPlane: a governed root tree.\n"),
        ("schemas/handbook/page.schema.json", "schema", '{"type": "object"}\n'),
        ("frameworks/notes/charter.md", "framework", "# Charter\n"),
    ], None),
    ("PKG-CHANGED-001", "packages", "module", "SPEC-PLATFORM-004", "1.0.0", {"dependencies": []}, [
        ("lib/changed/run.py", "module", "print('v1')\n"),
    ], {"lib/changed/run.py": "print('v2, edited after the manifest')\n"}),
    ("PKG-KERNEL-002", "packages", "kernel", "SPEC-PLATFORM-004", "1.0.0", {"dependencies": []}, [
        ("lib/kernel2/k.py", "module", "pass\n"),
    ], None),
    ("PAK-FOREIGN-001", "packages", "module", "SPEC-PLATFORM-004", "1.0.0", {"dependencies": []}, [
        ("lib/foreign/f.py", "module", "pass\n"),
    ], None),
]

for pid, layout, ptype, spec, version, extra, files, edited in PACKAGES:
    prefixed = extra.get("prefixed", False)
    m = {"schema_version": "1.2", "package_id": pid, "version": version, "package_type": ptype, "spec_id": spec,
         "dependencies": extra.get("dependencies", []),
         "assets": [{"path": p, "sha256": ("sha256:" if prefixed else "") + sha(c.encode()), "classification": cl} for p, cl, c in files],
         "metadata": {"author": "platform-team", "built_by": "cpv2 pkgtool 2.4"}}
    for k in ("plane_id", "tier"):
        if k in extra:
            m[k] = extra[k]
    m["manifest_hash"] = "sha256:" + sha(json.dumps({k: v for k, v in m.items() if k != "metadata"}, sort_keys=True).encode())
    base = "" if layout == "installed" else "packages/%s/" % pid
    write("%s/%s/manifest.json" % (layout, pid), json.dumps(m, indent=2) + "\n")
    for p, _, c in files:
        c = (edited or {}).get(p, c)
        write(base + p, c, 0o755 if c.startswith("#!") else 0o644)

LEDGERS = {
    "ledger/governance.jsonl": "ledgers/governance.jsonl",
    "ledger/governance_broken.jsonl": "ledgers/governance_broken.jsonl",
    "planes/ho1/sessions/SES-7f3a9c21/ledger/evidence.jsonl": "ledgers/session_evidence.jsonl",
    "planes/ho1/sessions/SES-0b1d2e3f/ledger/evidence.jsonl": "ledgers/session_evidence_broken.jsonl",
    "ledgers/session_mixed.jsonl": "ledgers/session_mixed.jsonl",
}
for dst, src in LEDGERS.items():
    write(dst, open(src, "rb").read())
# A ledger with lines that are not entries: a blank line, text, and bytes
# that are not UTF-8, inserted after its first line.
lines = open("ledgers/governance.jsonl", "rb").read().split(b"\n")
write("ledger/damaged.jsonl", b"\n".join(lines[:1] + [b"", b"--- truncated by a crash ---", b"\xff\xfe{}"] + lines[1:]))
