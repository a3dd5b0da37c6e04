package llmcmd

import (
	"encoding/json"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
)

// plainComplete reports whether req, a complete request with its flags
// merged, has the plain shape callers send (cli.Verb.Plain): checked by
// code, a subset of what cp-llm.complete.request.json accepts (its
// patterns exactly; integers and the temperature as plain decimal
// literals inside the schema's bounds; the oneOf of a pack or a raw
// prompt), so that a call does not compile the request schema. False says
// nothing: the schema judges and names what is wrong
// (FuzzPlainComplete holds the subset against our validator and
// jsonschema/v6).
func plainComplete(req cli.Request) bool {
	for k, v := range req {
		s, isStr := v.(string)
		ok := false
		switch k {
		case "prompt_pack_id":
			rest, pre := strings.CutPrefix(s, "PRM-")
			ok = isStr && pre && rest != "" && len(s) <= 128 && allOf(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
		case "variables", "schema":
			_, ok = v.(map[string]any)
		case "prompt":
			ok = isStr && s != ""
		case "system", "handler":
			ok = isStr
		case "max_tokens":
			n, isNum := v.(json.Number)
			ok = isNum && cli.PlainInt(string(n), 7) && string(n) != "0" && (len(n) < 7 || string(n) == "1000000")
		case "temperature":
			n, isNum := v.(json.Number)
			ok = isNum && plainTemperature(string(n))
		case "provider_id":
			ok = isStr && plainID(s)
		case "model":
			ok = isStr && s != "" && len(s) <= 256 // bytes: at least as many as code points
		case "work_order_id":
			ok = isStr && len(s) == 15 && strings.HasPrefix(s, "WO-") && allOf(s[3:11], "0123456789") && s[11] == '-' && allOf(s[12:], "0123456789")
		case "session_id":
			ok = isStr && plane.ValidSessionID(s)
		case "store_bodies", "stream":
			_, ok = v.(bool)
		case "mode":
			ok = s == "tools_first" || s == "llm_assisted"
		case "decision_seq":
			n, isNum := v.(json.Number)
			ok = isNum && cli.PlainInt(string(n), 18)
		}
		if !ok {
			return false
		}
	}
	// oneOf: a pack without a raw prompt, or a raw prompt without a pack
	// or variables (the two cannot both hold).
	_, pack := req["prompt_pack_id"]
	_, raw := req["prompt"]
	_, vars := req["variables"]
	return pack && !raw || raw && !pack && !vars
}

// plainTemperature: 0 to 2 written plainly: 0 or 1 with up to six
// decimals, or 2.
func plainTemperature(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	switch whole {
	case "0", "1":
		return !dot || (len(frac) >= 1 && len(frac) <= 6 && allOf(frac, "0123456789"))
	case "2":
		return !dot
	}
	return false
}

// plainID: ^[a-z][a-z0-9_-]{0,63}$.
func plainID(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && s[0] >= 'a' && s[0] <= 'z' && allOf(s[1:], "abcdefghijklmnopqrstuvwxyz0123456789_-")
}

// allOf reports whether every byte of s is one of set's (ASCII).
func allOf(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}
