package plane

import "fmt"

// Error is a plane-level refusal with a stable code.
type Error struct {
	code string
	kind string // kindArgument, or "" when the code alone says what the error is
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable code (PLANE_EXISTS, PLANE_DIR_NOT_EMPTY, ...).
func (e *Error) Code() string { return e.code }

// Kind says what the error is where its code alone does not: "argument"
// (the kind internal/cli reads) when the fault is in a command-line
// argument. A --trust-key that does not parse is TRUSTED_KEYS_INVALID,
// like a trusted-keys file that does not, but the fix is in the command.
func (e *Error) Kind() string { return e.kind }

const kindArgument = "argument"

func refuse(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}

// TierLayout is where one tier lives, relative to the HO3 root.
type TierLayout struct {
	PlaneID string // ho3, ho2, ho1
	Tier    string // HO3, HO2, HO1
	Dir     string // "" for HO3, planes/ho2, planes/ho1
	Ledger  string // relative to the tier's Dir
	Parent  string // the parent tier's ledger, relative to the HO3 root; "" for HO3
}

// Layout lists the three tiers, highest first.
var Layout = []TierLayout{
	{PlaneID: "ho3", Tier: "HO3", Dir: "", Ledger: "ledger/governance.jsonl"},
	{PlaneID: "ho2", Tier: "HO2", Dir: "planes/ho2", Ledger: "ledger/workorder.jsonl", Parent: "ledger/governance.jsonl"},
	{PlaneID: "ho1", Tier: "HO1", Dir: "planes/ho1", Ledger: "ledger/worker.jsonl", Parent: "planes/ho2/ledger/workorder.jsonl"},
}

// FrameworkPath is where a registered framework version's document is kept,
// relative to the HO3 root: outside the governed roots (registration makes
// no package-owned file) and one file per version (history is kept).
func FrameworkPath(id, version string) string {
	return "registries/frameworks/" + id + "/" + version + ".md"
}

// SpecPath is where a registered spec version's manifest is kept.
func SpecPath(id, version string, yaml bool) string {
	name := "manifest.json"
	if yaml {
		name = "manifest.yaml"
	}
	return "registries/specs/" + id + "/" + version + "/" + name
}

// Refuse returns a plane-level refusal: internal/bootstrap's codes are the
// plane's (PLANE_EXISTS, PLANE_NESTED, ...).
func Refuse(code, format string, args ...any) *Error {
	return refuse(code, format, args...)
}

// BadArg returns a plane-level refusal of a command-line argument (kind
// "argument").
func BadArg(code, format string, args ...any) *Error {
	return &Error{code: code, kind: kindArgument, msg: fmt.Sprintf(format, args...)}
}
