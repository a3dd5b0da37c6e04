#!/usr/bin/env python3
"""Generate CPv2 package directories (issue 19): a manifest.json as CPv2's
1.2 manifests are (no framework_id, no sizes, manifest_hash and tier keys,
files under tests/ and docs/) beside its files.

Run from this directory:  python3 gen_packages.py   (deterministic)
Every classification and package type CPv2 uses appears at least once.
PKG-BASELINE-001 writes its hashes as "sha256:" + hex, the others bare hex.
PKG-DOCS-TOOLS-001's docs/guide.md was edited after its manifest was
written: its declared hash no longer matches (Verify names it).
refused/*.json are manifests the converter refuses, each with its reason
in REFUSED.json.
"""
import hashlib
import json
import os

PACKAGES = {
    "PKG-GATES-001": {
        "package_type": "module", "spec_id": "SPEC-GATE-001", "version": "0.3.1", "plane_id": "ho3", "tier": "HO3",
        "dependencies": ["PKG-DOCS-TOOLS-001@>=0.2.0", "python>=3.11"],
        "files": [
            ("modules/gates/run.py", "module", "import sys\n\n\ndef main():\n    return 0\n\n\nif __name__ == '__main__':\n    sys.exit(main())\n"),
            ("modules/gates/g0.py", "gate", "def g0(manifest, files):\n    return sorted(set(files) - {a['path'] for a in manifest['assets']})\n"),
            ("schemas/gate_result.schema.json", "spec_asset", '{"type": "object", "required": ["gate", "passed"]}\n'),
            ("config/gates.json", "registry", '{"order": ["G0", "G1", "G5"]}\n'),
            ("tests/test_g0.py", "test", "from modules.gates.g0 import g0\n\n\ndef test_undeclared_file():\n    assert g0({'assets': []}, ['x']) == ['x']\n"),
            ("docs/gates.md", "documentation", "# Gates\n\nG0 checks the declaration.\n"),
        ],
    },
    "PKG-DOCS-TOOLS-001": {
        "package_type": "library", "spec_id": "SPEC-GATE-001", "version": "0.2", "plane_id": "HO3", "tier": "HO3",
        "dependencies": [],
        "files": [
            ("lib/docs_tools/render.py", "library", "def render(md):\n    return md.strip() + '\\n'\n"),
            ("frameworks/FMWK-003_naming_conventions.md", "law_doc", "# FMWK-003: Naming Conventions\n"),
            ("specs/SPEC-GATE-001/manifest.yaml", "spec_manifest", "spec_id: SPEC-GATE-001\n"),
            ("docs/guide.md", "documentation", "# Guide\n\nRun render().\n"),
            ("scripts/build_docs.sh", "other", "#!/bin/sh\nexec python -m docs_tools.render \"$@\"\n"),
        ],
        "edited": {"docs/guide.md": "# Guide\n\nRun render() twice.\n"},
    },
    "PKG-BASELINE-001": {
        "package_type": "baseline", "spec_id": "SPEC-GATE-001", "version": "v1.0.0", "tier": "HO3", "prefixed": True,
        "dependencies": [],
        "files": [
            ("config/baseline.json", "config", '{"profile": "default"}\n'),
            ("policies/base.cedar", "policy", "forbid(principal, action, resource) when { false };\n"),
            ("governed_prompts/PRM-BASE-001/template.md", "prompt", "You are a careful reviewer.\n"),
        ],
    },
    "PKG-HANDBOOK-001": {
        "package_type": "documentation", "spec_id": "SPEC-GATE-001", "version": "1.4.0", "plane_id": "ho3",
        "dependencies": [],
        "files": [
            ("docs/handbook/index.md", "documentation", "# Handbook\n"),
            ("docs/handbook/glossary.md", "glossary", "# Glossary\n\nPlane: a governed root tree.\n"),
        ],
    },
}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def manifest(pid, p):
    m = {"schema_version": "1.2", "package_id": pid, "version": p["version"], "package_type": p["package_type"],
         "spec_id": p["spec_id"], "dependencies": p["dependencies"],
         "assets": [{"path": f, "sha256": ("sha256:" if p.get("prefixed") else "") + sha(c.encode()), "classification": cl} for f, cl, c in p["files"]],
         "metadata": {"author": "platform-team", "built_by": "cpv2 pkgtool 2.4"}}
    for k in ("plane_id", "tier"):
        if k in p:
            m[k] = p[k]
    m["manifest_hash"] = "sha256:" + sha(json.dumps({k: v for k, v in m.items() if k != "metadata"}, sort_keys=True).encode())
    return m


for pid, p in PACKAGES.items():
    for f, _, c in p["files"]:
        path = os.path.join(pid, f)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(p.get("edited", {}).get(f, c))
    with open(os.path.join(pid, "manifest.json"), "w") as fh:
        json.dump(manifest(pid, p), fh, indent=2)
        fh.write("\n")

base = manifest("PKG-GATES-001", PACKAGES["PKG-GATES-001"])
refused = {
    "kernel.json": (dict(base, package_type="kernel"), 'package_type "kernel" has no mapping'),
    "foreign_id.json": (dict(base, package_id="PAK-GATES-001"), 'package_id "PAK-GATES-001" is not a package id of ours'),
    "ledger_asset.json": (dict(base, assets=base["assets"] + [{"path": "ledger/governance.jsonl", "sha256": "0" * 64, "classification": "other"}]), "no package may write under ledger/"),
    "other_framework.json": (dict(base, framework_id="FMWK-002"), "framework_id FMWK-002, but spec SPEC-GATE-001 answers to FMWK-001"),
    "bad_hash.json": (dict(base, assets=[dict(base["assets"][0], sha256="md5:abc")]), 'sha256 "md5:abc" is not SHA-256 hex'),
    "dotdot.json": (dict(base, assets=[dict(base["assets"][0], path="modules/../../etc/passwd")]), "breaks our manifest rules"),
}
os.makedirs("refused", exist_ok=True)
reasons = {}
for name, (m, why) in refused.items():
    with open(os.path.join("refused", name), "w") as fh:
        json.dump(m, fh, indent=2)
        fh.write("\n")
    reasons[name] = why
with open("refused/REFUSED.json", "w") as fh:
    json.dump(reasons, fh, indent=1, sort_keys=True)
    fh.write("\n")
