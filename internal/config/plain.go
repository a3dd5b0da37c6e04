package config

import (
	"encoding/json"
	"strings"
)

// plainProviders reports whether v, a config/providers.json decoded with
// numbers as json.Number, has the plain shape operators and the tests
// write, checked by code: a subset of what providers.schema.json accepts
// (ids, key variables and prices exactly as its patterns say; base URLs
// and model ids of printable ASCII without spaces; integers as plain
// decimal literals that fit int64), so a file of that shape is valid
// without compiling the schema in each gateway process. False says
// nothing: the schema judges, and names what is wrong (FuzzPlainProviders
// holds the subset against our validator and jsonschema/v6).
func plainProviders(v any) bool {
	doc, ok := v.(map[string]any)
	if !ok {
		return false
	}
	n := 0
	for k, x := range doc {
		switch k {
		case "default_provider":
			s, _ := x.(string)
			ok = plainID(s)
			n++
		case "providers":
			ps, _ := x.([]any)
			ok = len(ps) >= 1
			for _, p := range ps {
				ok = ok && plainProvider(p)
			}
			n++
		case "caps":
			ok = plainCaps(x)
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return n == 2
}

func plainProvider(v any) bool {
	o, ok := v.(map[string]any)
	if !ok {
		return false
	}
	n := 0
	for k, x := range o {
		s, isStr := x.(string)
		switch k {
		case "id":
			ok = isStr && plainID(s)
			n++
		case "type":
			ok = isStr && (s == "anthropic" || s == "openai" || s == "mock")
			n++
		case "base_url":
			ok = isStr && plainURL(s)
		case "api_key_env":
			ok = isStr && plainEnvName(s)
		case "models":
			ms, _ := x.([]any)
			ok = len(ms) >= 1
			for _, m := range ms {
				ok = ok && plainModel(m)
			}
			n++
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return n == 3
}

func plainModel(v any) bool {
	o, ok := v.(map[string]any)
	if !ok {
		return false
	}
	n := 0
	for k, x := range o {
		s, isStr := x.(string)
		switch k {
		case "id":
			ok = isStr && len(s) >= 1 && len(s) <= 256 && graphicASCII(s)
			n++
		case "input_usd_per_mtok", "output_usd_per_mtok":
			ok = isStr && plainPrice(s)
			n++
		case "max_tokens":
			ok = plainUint(x, 1)
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return n == 3
}

func plainCaps(v any) bool {
	o, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, x := range o {
		switch k {
		case "plane_micro_usd":
			ok = plainUint(x, 0)
		case "providers", "subjects":
			var m map[string]any
			m, ok = x.(map[string]any)
			for _, n := range m {
				ok = ok && plainUint(n, 0)
			}
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return true
}

// plainID: ^[a-z][a-z0-9_-]{0,63}$.
func plainID(s string) bool {
	if len(s) < 1 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// plainEnvName: ^[A-Z_][A-Z0-9_]{0,127}$.
func plainEnvName(s string) bool {
	if len(s) < 1 || len(s) > 128 || (s[0] < 'A' || s[0] > 'Z') && s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// plainURL: http:// or https:// and then printable ASCII without spaces
// (a subset of ^https?://[^\s]+$).
func plainURL(s string) bool {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "https://")
	}
	return ok && rest != "" && graphicASCII(rest)
}

// graphicASCII: every byte printable ASCII other than the space, so no
// reading of \s matches one and a byte is a code point.
func graphicASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// plainPrice: ^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$.
func plainPrice(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 9 || (whole[0] == '0' && len(whole) > 1) || !digits(whole) {
		return false
	}
	return !dot || (len(frac) >= 1 && len(frac) <= 6 && digits(frac))
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainUint: a json.Number written as a decimal integer without sign,
// fraction or exponent, of at most 18 digits (it fits int64), and at
// least lo (0 or 1).
func plainUint(v any, lo int) bool {
	n, ok := v.(json.Number)
	s := string(n)
	if !ok || len(s) < 1 || len(s) > 18 || !digits(s) || (s[0] == '0' && len(s) > 1) {
		return false
	}
	return lo == 0 || s != "0"
}
