package ledger

import "strings"

// EventType is one entry of the event catalogue: an event type a tool
// writes, and the tool that owns it.
type EventType struct {
	// Name is the exact event type, or a family: a prefix ending in "_*"
	// (INSTALL_*) that reserves every type it begins, so that a type a tool
	// adds later is reserved before it is listed.
	Name  string
	Owner string // the binary that writes it (and the verb, where one)
	Doc   string // what an entry of this type records
}

// Events is the event catalogue (DESIGN.md §8): every event type a tool
// writes, with its owner. Every type it names is reserved: only its owner
// writes it, through the library, and cp-ledger append refuses it
// (RESERVED_EVENT_TYPE), so a gate that reads one (G5's waivers, G6's
// GENESIS links) reads what a tool wrote in its own sequence. A test holds
// it complete against the event types written in the source.
var Events = []EventType{
	{"GENESIS", "cp-install bootstrap, cp-ledger genesis, cp-wo start", "a ledger's first entry; a lower tier's records its parent ledger's head"},
	{"INSTALL_*", "cp-install", "the install family"},
	{"INSTALL_STARTED", "cp-install install, bootstrap", "an install began: op_id, package, version, manifest and archive hashes"},
	{"INSTALL_FAILED", "cp-install install", "an install was refused or failed, with its code"},
	{"INSTALLED", "cp-install install, bootstrap", "an install completed; a waiver of G5 is its weakened_control"},
	{"ROLLBACK_*", "cp-install", "the rollback family"},
	{"ROLLBACK_STARTED", "cp-install rollback", "a rollback began"},
	{"ROLLBACK_FAILED", "cp-install rollback", "a rollback was refused or failed"},
	{"ROLLED_BACK", "cp-install rollback", "a rollback completed"},
	{"CHECKPOINT_*", "cp-install, cp-ledger", "the checkpoint family"},
	{"CHECKPOINT_CREATED", "cp-install checkpoint, install, rollback", "a plane checkpoint (VER-...) was taken"},
	{"CHECKPOINT_ANCHORED", "cp-ledger, cp-wo", "a lower tier's ledger checkpoint anchored in its parent's ledger"},
	{"GATE_*", "cp-gate", "the gate family"},
	{"GATE_PASSED", "cp-gate check, integrity --record", "a gate run passed"},
	{"GATE_FAILED", "cp-gate check, integrity --record", "a gate run failed"},
	{"REGISTERED_*", "cp-pkg", "the registration family"},
	{"FRAMEWORK_REGISTERED", "cp-pkg register-framework, cp-install bootstrap", "a framework version registered"},
	{"FRAMEWORK_REGISTRATION_REFUSED", "cp-pkg register-framework", "a framework registration refused"},
	{"FRAMEWORK_CHECKED", "cp-pkg check-framework", "a framework checked against its invariants"},
	{"SPEC_REGISTERED", "cp-pkg register-spec, cp-install bootstrap", "a spec version registered"},
	{"SPEC_REGISTRATION_REFUSED", "cp-pkg register-spec", "a spec registration refused"},
	{"WO_*", "cp-wo", "the work-order family"},
	{"WO_CREATED", "cp-wo create", "a work order created (HO2)"},
	{"WO_APPROVED", "cp-wo approve", "a work order approved (HO3)"},
	{"WO_REJECTED", "cp-wo reject", "a work order rejected (HO3)"},
	{"WO_STARTED", "cp-wo start", "a work order started; a session opened (HO2)"},
	{"WO_COMPLETED", "cp-wo complete", "a work order completed (HO2)"},
	{"WO_CANCELLED", "cp-wo cancel", "a work order cancelled (HO2)"},
	{"WO_EXPIRED", "cp-wo", "a work order found expired (HO2)"},
	{"TURN", "cp-wo turn", "an agent turn (the session ledger)"},
	{"TURN_REFUSED", "cp-wo turn", "a turn header refused at record time, with its code and hash (the session ledger)"},
	{"TOKEN_*", "cp-auth", "the token family"},
	{"TOKEN_ISSUED", "cp-auth token", "a token minted (never the token itself)"},
	{"TOKEN_REVOKED", "cp-auth revoke", "tokens revoked"},
	{"TRUST_*", "cp-install trust", "the trust family"},
	{"TRUST_CHANGED", "cp-install trust, cp-auth init", "a key trusted or distrusted"},
	{"AUTHZ_DENIED", "the request path of every binary", "a request refused by the firewall (HO3)"},
	{"TOOL_DECISION", "cp-auth check", "an agent's own tool call allowed or denied"},
	{"LLM_*", "cp-llm", "the model-call family"},
	{"LLM_CALL", "cp-llm complete", "a model call, with its evidence"},
	{"LLM_RESERVED", "cp-llm complete", "a budget reservation before a model call"},
	{"LLM_REFUSED", "cp-llm complete", "a model call refused before any provider was asked (a budget, a worker without a prompt pack, a pack or work order that does not allow it), with its code (HO2)"},
	{"ROUTE_*", "cp-route", "the routing family"},
	{"ROUTE_DECISION", "cp-route route", "a routing decision"},
	{"ROUTE_RESERVED", "cp-route route", "a classifier call counted against its session's LLM call limit before it is made (the decision that records the call names it)"},
	{"LEDGER_MIGRATED", "cp-ledger migrate", "a tier's ledger moved between stores: both stores and the hash of the tier.json it leads to"},
	{"LEDGER_IMPORTED", "cp-ledger import", "a file ledger loaded into a tier's empty ledger in PostgreSQL: its entries, root and the tier.json in force"},
	{"LEGACY_ENTRY", "cp-ledger import --legacy, cp-install import-cpv2", "one line of a CPv2 ledger re-chained into an imported ledger: its sha256, legacy entry_hash, event type and timestamp, the verdict of CPv2's rule, the line"},
	{"LEGACY_IMPORTED", "cp-ledger import --legacy, cp-install import-cpv2", "a CPv2 ledger re-chained into a new ledger of ours (HO3): its source, lines by verdict and the new ledger's root"},
}

// Reserved reports whether eventType is in the event catalogue, by name or
// family: only its owning tool may write it. Case and surrounding spaces are
// ignored, so that no lookalike ("installed", " INSTALLED") stands in a
// ledger beside the tools' own entries and reads as one of them in show.
func Reserved(eventType string) bool {
	eventType = strings.ToUpper(strings.TrimSpace(eventType))
	for _, e := range Events {
		if prefix, ok := strings.CutSuffix(e.Name, "*"); ok {
			if strings.HasPrefix(eventType, prefix) {
				return true
			}
		} else if e.Name == eventType {
			return true
		}
	}
	return false
}
