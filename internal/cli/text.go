package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The text view (--format text) has one rendering rule, owned here and not
// by the verbs: a failure is shown as a failure. On an error the runner
// itself writes the verdict line "error: CODE: message" (and "hint: ..."),
// and only then the result, if the failure carries one, rendered by the
// verb's FailedText or, without one, by the neutral key/value view. A verb's
// Text is called for successes only, so a success line ("ledger valid",
// "installed ...") can never be printed for a negative verdict, whatever the
// verb's renderer says.

// renderText writes one outcome's text view and returns false when no view
// could be rendered (the caller then prints the JSON envelope instead).
func (r *runner) renderText(verb *Verb, result any, e *Error, o Outcome) bool {
	var b bytes.Buffer
	if e != nil {
		fmt.Fprintf(&b, "error: %s: %s\n", e.Code, e.Message)
		if e.Hint != "" {
			fmt.Fprintf(&b, "hint: %s\n", e.Hint)
		}
		if o.LedgerEntryID != "" { // a refusal is itself recorded
			fmt.Fprintf(&b, "recorded: %s (seq %d)\n", o.LedgerEntryID, o.Seq)
		}
		if result != nil {
			var view func(io.Writer, any) error
			if verb != nil {
				view = verb.FailedText
			}
			if !safeRender(&b, view, result) && !safeRender(&b, Fields, result) {
				fmt.Fprintf(&b, "(the result could not be shown as text; use --format json)\n")
			}
		}
		r.out.Write(b.Bytes())
		return true
	}
	var view func(io.Writer, any) error
	if verb != nil {
		view = verb.Text
	}
	if !safeRender(&b, view, result) && !safeRender(&b, Fields, result) {
		return false
	}
	r.out.Write(b.Bytes())
	return true
}

// safeRender runs one renderer into b. A renderer that fails or panics (a
// result of a type it does not know) leaves b as it was and reports false:
// a view is never half-printed, and a renderer's bug never crashes the run.
func safeRender(b *bytes.Buffer, view func(io.Writer, any) error, result any) (ok bool) {
	if view == nil {
		return false
	}
	n := b.Len()
	defer func() {
		if recover() != nil || !ok {
			b.Truncate(n)
			ok = false
		}
	}()
	return view(b, result) == nil
}

// Fields is the neutral text view of any result: one "key: value" line per
// scalar, nested objects as dotted keys, arrays as indented "- item" lines,
// multi-line strings indented under their key, keys in the result's own
// order. It states facts and claims no verdict, so it is the fallback for
// verbs without a view of their own and for the result of a failure.
func Fields(w io.Writer, result any) error {
	raw, err := marshalNoEscape(result)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	writeField(&b, "", "", v)
	_, err = w.Write(b.Bytes())
	return err
}

// ordered is a JSON object with its keys in document order.
type ordered struct {
	keys []string
	vals []any
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		var o ordered
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k.(string))
			o.vals = append(o.vals, v)
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}

// writeField writes v under key (a dotted path) at the given indent.
func writeField(b *bytes.Buffer, indent, key string, v any) {
	label := func() {
		b.WriteString(indent)
		if key != "" {
			b.WriteString(key)
			b.WriteString(":")
		}
	}
	switch x := v.(type) {
	case ordered:
		if len(x.keys) == 0 {
			if key != "" {
				label()
				b.WriteString(" {}\n")
			}
			return
		}
		for i, k := range x.keys {
			if key != "" {
				k = key + "." + k
			}
			writeField(b, indent, k, x.vals[i])
		}
	case []any:
		label()
		if len(x) == 0 {
			b.WriteString(" (none)\n")
			return
		}
		b.WriteString("\n")
		for _, item := range x {
			if o, ok := item.(ordered); ok && len(o.keys) > 0 {
				// An object in a list: "- k: v" then its other fields
				// aligned under the first.
				var sub bytes.Buffer
				writeField(&sub, "", "", o)
				for i, line := range strings.SplitAfter(strings.TrimSuffix(sub.String(), "\n"), "\n") {
					if i == 0 {
						b.WriteString(indent + "  - ")
					} else {
						b.WriteString(indent + "    ")
					}
					b.WriteString(strings.TrimSuffix(line, "\n") + "\n")
				}
				continue
			}
			b.WriteString(indent + "  - ")
			b.WriteString(scalar(item))
			b.WriteString("\n")
		}
	case string:
		if strings.Contains(strings.TrimSuffix(x, "\n"), "\n") {
			label()
			b.WriteString("\n")
			for _, line := range strings.Split(strings.TrimSuffix(x, "\n"), "\n") {
				b.WriteString(indent + "  " + line + "\n")
			}
			return
		}
		label()
		b.WriteString(" " + scalar(x) + "\n")
	default:
		label()
		b.WriteString(" " + scalar(x) + "\n")
	}
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == "" {
			return `""`
		}
		return strings.TrimSuffix(x, "\n")
	case ordered:
		return "{...}"
	case []any:
		return "[...]"
	}
	return fmt.Sprint(v)
}
