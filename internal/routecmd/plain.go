package routecmd

import (
	"encoding/json"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
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
			ok = isStr && plane.ValidSessionID(s)
		case "work_order_id":
			ok = isStr && s != ""
		case "variables":
			_, ok = v.(map[string]any)
		case "replay":
			n, isNum := v.(json.Number)
			ok = isNum && cli.PlainInt(string(n), 18)
		}
		if !ok {
			return false
		}
	}
	return true
}
