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
	return plainObject(v, 2, func(k string, x any) (ok, required bool) {
		switch k {
		case "default_provider":
			s, _ := x.(string)
			return plainID(s), true
		case "providers":
			return plainArray(x, 1, plainProvider), true
		case "caps":
			return plainCaps(x), false
		}
		return false, false
	})
}

func plainProvider(v any) bool {
	return plainObject(v, 3, func(k string, x any) (ok, required bool) {
		s, isStr := x.(string)
		switch k {
		case "id":
			return isStr && plainID(s), true
		case "type":
			return isStr && (s == "anthropic" || s == "openai" || s == "mock"), true
		case "base_url":
			return isStr && plainURL(s), false
		case "api_key_env":
			return isStr && plainEnvName(s), false
		case "models":
			return plainArray(x, 1, plainModel), true
		}
		return false, false
	})
}

func plainModel(v any) bool {
	return plainObject(v, 3, func(k string, x any) (ok, required bool) {
		s, isStr := x.(string)
		switch k {
		case "id":
			return isStr && len(s) >= 1 && len(s) <= 256 && graphicASCII(s), true
		case "input_usd_per_mtok", "output_usd_per_mtok":
			return isStr && plainPrice(s), true
		case "max_tokens":
			return plainUint(x, 1), false
		}
		return false, false
	})
}

func plainCaps(v any) bool {
	return plainObject(v, 0, func(k string, x any) (ok, required bool) {
		switch k {
		case "plane_micro_usd":
			return plainUint(x, 0), false
		case "providers", "subjects":
			return plainObject(x, 0, func(_ string, n any) (bool, bool) { return plainUint(n, 0), false }), false
		}
		return false, false
	})
}

// plainObject reports whether v is an object each of whose members member
// accepts, holding the want members member calls required (an unknown
// member: member says not ok).
func plainObject(v any, want int, member func(k string, x any) (ok, required bool)) bool {
	o, isObj := v.(map[string]any)
	if !isObj {
		return false
	}
	n := 0
	for k, x := range o {
		ok, required := member(k, x)
		if !ok {
			return false
		}
		if required {
			n++
		}
	}
	return n == want
}

// plainArray reports whether v is an array of at least min items, each
// of which item accepts.
func plainArray(v any, min int, item func(any) bool) bool {
	xs, isArr := v.([]any)
	for _, x := range xs {
		if !item(x) {
			return false
		}
	}
	return isArr && len(xs) >= min
}

const (
	lower  = "abcdefghijklmnopqrstuvwxyz"
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digit  = "0123456789"
	idRest = lower + digit + "_-"
)

// plainToken: s is 1 to max bytes, its first in first and every other in
// rest (an ASCII pattern ^[first][rest]*$ with a bound on its length).
func plainToken(s string, max int, first, rest string) bool {
	if len(s) < 1 || len(s) > max || strings.IndexByte(first, s[0]) < 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if strings.IndexByte(rest, s[i]) < 0 {
			return false
		}
	}
	return true
}

// plainID: ^[a-z][a-z0-9_-]{0,63}$.
func plainID(s string) bool { return plainToken(s, 64, lower, idRest) }

// plainEnvName: ^[A-Z_][A-Z0-9_]{0,127}$.
func plainEnvName(s string) bool { return plainToken(s, 128, upper+"_", upper+digit+"_") }

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
