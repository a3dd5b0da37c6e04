package config

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// providersOf builds the ProvidersDoc of v, a config/providers.json already
// decoded (numbers as json.Number) and held to providers.schema.json: by
// hand, not by a second decode of the bytes, which cost a gateway process
// 0.2 ms (encoding/json building its reflection tables for one value; the
// gateway reads this file at every call). It is what the strict decode
// (strict) gives, field for field, and refuses what it refuses: a field
// the types do not know, a value of another type, an integer that does not
// fit int64 (FuzzProvidersOf holds the two to each other on every file the
// schema accepts), so the types and the schema still cannot drift apart.
func providersOf(v any) (*ProvidersDoc, error) {
	var d ProvidersDoc
	err := fields(v, "", func(k string, x any) (err error) {
		switch k {
		case "default_provider":
			d.DefaultProvider, err = str(x, k)
		case "providers":
			d.Providers, err = list(x, k, providerOf)
		case "caps":
			d.Caps, err = capsOf(x, k)
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

func providerOf(v any, at string) (Provider, error) {
	var p Provider
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "id":
			p.ID, err = str(x, at+"/"+k)
		case "type":
			p.Type, err = str(x, at+"/"+k)
		case "base_url":
			p.BaseURL, err = str(x, at+"/"+k)
		case "api_key_env":
			p.APIKeyEnv, err = str(x, at+"/"+k)
		case "models":
			p.Models, err = list(x, at+"/"+k, modelOf)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return p, err
}

func modelOf(v any, at string) (Model, error) {
	var m Model
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "id":
			m.ID, err = str(x, at+"/"+k)
		case "input_usd_per_mtok":
			m.InputUSD, err = str(x, at+"/"+k)
		case "output_usd_per_mtok":
			m.OutputUSD, err = str(x, at+"/"+k)
		case "max_tokens":
			m.MaxTokens, err = integer(x, at+"/"+k)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return m, err
}

func capsOf(v any, at string) (*Caps, error) {
	if v == nil {
		return nil, nil // as encoding/json leaves a pointer for null
	}
	c := &Caps{}
	err := fields(v, at, func(k string, x any) (err error) {
		switch k {
		case "plane_micro_usd":
			if x == nil {
				c.PlaneMicroUSD = nil
				return nil
			}
			n, err := integer(x, at+"/"+k)
			c.PlaneMicroUSD = &n
			return err
		case "providers":
			c.Providers, err = integers(x, at+"/"+k, c.Providers)
		case "subjects":
			c.Subjects, err = integers(x, at+"/"+k, c.Subjects)
		default:
			err = fmt.Errorf("%s: unknown field %q", at, k)
		}
		return err
	})
	return c, err
}

// fields calls fn for each member of the object v (null: none, as
// encoding/json leaves a struct for null).
func fields(v any, at string, fn func(k string, x any) error) error {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not an object", pointer(at))
	}
	for k, x := range m {
		if err := fn(k, x); err != nil {
			return err
		}
	}
	return nil
}

// items calls fn for each element of the array v (null: none).
func items(v any, at string, fn func(at string, x any) error) error {
	if v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: not an array", at)
	}
	for i, x := range a {
		if err := fn(at+"/"+strconv.Itoa(i), x); err != nil {
			return err
		}
	}
	return nil
}

// list reads an array, each item by of, as encoding/json fills a slice:
// nil for a member that is null, empty (not nil) for [].
func list[T any](v any, at string, of func(v any, at string) (T, error)) ([]T, error) {
	if v == nil {
		return nil, nil
	}
	out := []T{}
	err := items(v, at, func(at string, x any) error {
		t, err := of(x, at)
		out = append(out, t)
		return err
	})
	return out, err
}

func str(v any, at string) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: not a string", at)
	}
	return s, nil
}

// integer reads an int64 as encoding/json does: the number's literal
// parsed in base 10 (1.0, 1e3 and what overflows are refused).
func integer(v any, at string) (int64, error) {
	if v == nil {
		return 0, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: not a number", at)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s is not an int64", at, n)
	}
	return i, nil
}

// integers reads an object of int64s into m (made if nil, as
// encoding/json does; null leaves it nil).
func integers(v any, at string, m map[string]int64) (map[string]int64, error) {
	if v == nil {
		return nil, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return m, fmt.Errorf("%s: not an object", at)
	}
	if m == nil {
		m = make(map[string]int64, len(o))
	}
	for k, x := range o {
		n, err := integer(x, at+"/"+k) // null: 0, as encoding/json sets it
		if err != nil {
			return m, err
		}
		m[k] = n
	}
	return m, nil
}
