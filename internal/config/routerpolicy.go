package config

import (
	"encoding/json"
	"fmt"
	"strings"
)

// routerPolicyOf builds the RouterPolicyDoc of v, a config/router_policy.json
// already decoded (numbers as json.Number) and held to
// router_policy.schema.json: by hand, not by a second decode of the bytes,
// which cost a cp-route process 16 page faults (0.4 ms: encoding/json
// building its reflection tables for one value; cp-route reads the file at
// every start). It is what the strict decode gives, field for field, and
// refuses what it refuses (FuzzRouterPolicyOf holds the two to each other
// on every file the schema accepts); parse still asks the strict decode
// for the words of a refusal.
func routerPolicyOf(v any) (*RouterPolicyDoc, error) {
	var d RouterPolicyDoc
	err := fields(v, "", func(k string, x any) (err error) {
		switch k {
		case "routes":
			d.Routes, err = list(x, k, routeOf)
		case "deny":
			d.Deny, err = list(x, k, denyOf)
		case "limits":
			d.Limits, err = limitsOf(x, k)
		case "classifier":
			d.Classifier, err = classifierOf(x, k)
		case "default_route":
			err = targetOf(x, k, &d.DefaultRoute)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func routeOf(v any, at string) (Route, error) {
	var r Route
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "name":
			r.Name, err = str(x, at+"/"+k)
		case "when":
			r.When, err = str(x, at+"/"+k)
		case "handler":
			r.Handler, err = str(x, at+"/"+k)
		case "mode":
			r.Mode, err = str(x, at+"/"+k)
		case "prompt_pack_id":
			r.PromptPackID, err = str(x, at+"/"+k)
		case "required_capabilities":
			r.RequiredCapabilities, err = list(x, at+"/"+k, str)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return r, err
}

func denyOf(v any, at string) (DenyRule, error) {
	var r DenyRule
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "when":
			r.When, err = str(x, at+"/"+k)
		case "reason":
			r.Reason, err = str(x, at+"/"+k)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return r, err
}

func targetOf(v any, at string, t *Target) error {
	return fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "handler":
			t.Handler, err = str(x, at+"/"+k)
		case "mode":
			t.Mode, err = str(x, at+"/"+k)
		case "prompt_pack_id":
			t.PromptPackID, err = str(x, at+"/"+k)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
}

func limitsOf(v any, at string) (*Limits, error) {
	if v == nil {
		return nil, nil // as encoding/json leaves a pointer for null
	}
	l := &Limits{}
	err := fields(v, at, func(k string, x any) error {
		switch k {
		case "llm_calls_per_session":
			if x == nil {
				l.LLMCallsPerSession = nil
				return nil
			}
			n, err := integer(x, at+"/"+k)
			l.LLMCallsPerSession = &n
			return err
		}
		return fmt.Errorf("%s: unknown field %q", at, k)
	})
	return l, err
}

func classifierOf(v any, at string) (*Classifier, error) {
	if v == nil {
		return nil, nil
	}
	c := &Classifier{}
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "prompt_pack_id":
			c.PromptPackID, err = str(x, at+"/"+k)
		case "threshold":
			if x == nil {
				c.Threshold = nil
				return nil
			}
			n, ok := x.(json.Number)
			if !ok {
				return fmt.Errorf("%s/%s: not a number", at, k)
			}
			c.Threshold = &n
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return c, err
}

// plainRouterPolicy reports whether v, a config/router_policy.json decoded
// with numbers as json.Number, has the plain shape operators and the tests
// write, checked by code: a subset of what router_policy.schema.json
// accepts (handlers, modes and prompt pack ids exactly as its patterns and
// enum say; lengths counted in bytes, which bound the code points the
// schema counts; a limit as a plain decimal literal that fits int64; a
// threshold as 0, 1 or 0.digits), so a file of that shape is valid
// without compiling the schema in each cp-route process (14 page faults).
// False says nothing: the schema judges, and names what is wrong
// (FuzzPlainRouterPolicy holds the subset against our validator and
// jsonschema/v6).
func plainRouterPolicy(v any) bool {
	return plainObject(v, 1, func(k string, x any) (ok, required bool) {
		switch k {
		case "routes":
			return plainArray(x, 0, plainRoute), false
		case "deny":
			return plainArray(x, 0, plainDeny), false
		case "limits":
			return plainObject(x, 0, func(k string, x any) (bool, bool) {
				return k == "llm_calls_per_session" && plainUint(x, 0), false
			}), false
		case "classifier":
			return plainObject(x, 1, func(k string, x any) (bool, bool) {
				switch k {
				case "prompt_pack_id":
					return plainPackID(x), true
				case "threshold":
					return plainFraction(x), false
				}
				return false, false
			}), false
		case "default_route":
			return plainTarget(x), true
		}
		return false, false
	})
}

func plainTarget(v any) bool {
	return plainObject(v, 2, func(k string, x any) (ok, required bool) {
		switch k {
		case "handler":
			return plainHandler(x), true
		case "mode":
			return plainMode(x), true
		case "prompt_pack_id":
			return plainPackID(x), false
		}
		return false, false
	})
}

func plainRoute(v any) bool {
	return plainObject(v, 3, func(k string, x any) (ok, required bool) {
		s, isStr := x.(string)
		switch k {
		case "name":
			return isStr && len(s) <= 128, false
		case "when":
			return isStr && len(s) >= 1 && len(s) <= 4096, true
		case "handler":
			return plainHandler(x), true
		case "mode":
			return plainMode(x), true
		case "prompt_pack_id":
			return plainPackID(x), false
		case "required_capabilities":
			return plainArray(x, 0, func(x any) bool { s, ok := x.(string); return ok && s != "" }), false
		}
		return false, false
	})
}

func plainDeny(v any) bool {
	return plainObject(v, 2, func(k string, x any) (ok, required bool) {
		s, isStr := x.(string)
		switch k {
		case "when":
			return isStr && len(s) >= 1 && len(s) <= 4096, true
		case "reason":
			return isStr && len(s) >= 1 && len(s) <= 512, true
		}
		return false, false
	})
}

// plainHandler: ^[a-z][a-z0-9_.-]*$, at most 128 bytes.
func plainHandler(v any) bool {
	s, _ := v.(string)
	return plainToken(s, 128, lower, idRest+".")
}

// plainMode: tools_first or llm_assisted.
func plainMode(v any) bool {
	s, _ := v.(string)
	return s == "tools_first" || s == "llm_assisted"
}

// plainPackID: ^PRM-[A-Z0-9-]+$, at most 128 bytes.
func plainPackID(v any) bool {
	s, _ := v.(string)
	rest, ok := strings.CutPrefix(s, "PRM-")
	return ok && plainToken(rest, 124, upper+digit+"-", upper+digit+"-")
}

// plainFraction: a json.Number written 0, 1 or 0. and at most 17 digits
// (between 0 and 1, as the schema's minimum and maximum say).
func plainFraction(v any) bool {
	n, _ := v.(json.Number)
	s := string(n)
	if s == "0" || s == "1" {
		return true
	}
	frac, ok := strings.CutPrefix(s, "0.")
	return ok && len(frac) >= 1 && len(frac) <= 17 && digits(frac)
}
