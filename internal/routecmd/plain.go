package routecmd

import (
	"encoding/json"

	"github.com/control-plane/cp/internal/cli"
)

// plainRoute reports whether req, a route request with its flags merged,
// has the plain shape callers send (cli.Verb.Plain): checked by code, a
// subset of what cp-route.route.request.json accepts (its pattern and enum
// exactly; replay as a plain decimal literal that fits int64; any other
// member, as the schema lets any by), so that a process deciding one
// request does not compile the request schema (12 page faults). False
// says nothing: the schema judges and names what is wrong (FuzzPlainRoute
// holds the subset against our validator and jsonschema/v6).
func plainRoute(req cli.Request) bool {
	for k, v := range req {
		s, isStr := v.(string)
		ok := true
		switch k {
		case "plane":
			ok = s == "ho3" || s == "ho2" || s == "ho1"
		case "session_id":
			ok = isStr && plainSession(s)
		case "work_order_id":
			ok = isStr && s != ""
		case "variables":
			_, ok = v.(map[string]any)
		case "replay":
			n, isNum := v.(json.Number)
			ok = isNum && plainUint(string(n))
		}
		if !ok {
			return false
		}
	}
	return true
}

// plainSession: ^SES-[0-9]{8}-[0-9a-f]{8}$.
func plainSession(s string) bool {
	if len(s) != 21 || s[:4] != "SES-" || s[12] != '-' {
		return false
	}
	for i := 4; i < 21; i++ {
		c := s[i]
		switch {
		case i == 12:
		case c >= '0' && c <= '9':
		case i > 12 && c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// plainUint: a decimal integer literal without sign, fraction, exponent
// or leading zero, of 1 to 18 digits (it fits int64).
func plainUint(s string) bool {
	if len(s) < 1 || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
