// Package gate runs Control Plane's gates (DESIGN.md §7) and reports them
// in one shape (Result). It holds:
//
//   - the package gates that preflight and install run before anything is
//     written (Preflight; checks.go): the manifest and archive checks, G0A
//     (declaration), G1 (framework/spec chain), G5 (signature), the
//     version rule (VERSION) and OWNERSHIP, in DESIGN.md §6's order;
//   - the plane gates of cp-gate check (Check; plane.go): G0A, G1 and G5
//     re-judged for every installed package, G0K (kernel parity), G6
//     (ledgers) and G2/G3 (work orders; workorder.go);
//   - the integrity sweep (Integrity; integrity.go): G0B (governed files
//     against ownership, receipts and modes), G6 and RECEIPTS.
//
// A gate's result is never a silent pass: a gate that cannot judge its
// input (G5 on a source tree that has no archive yet, G2 without a work
// order) says so in Message and Details["applicable"] = false. An input a
// gate needs but cannot read is an error, never "nothing to check".
package gate

import (
	"fmt"
	"io"
)

// Finding is one error or warning of a gate: a stable code and the path or
// id it concerns.
type Finding struct {
	Code    string `json:"code"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Result is one gate's outcome.
type Result struct {
	Gate     string         `json:"gate"`
	Passed   bool           `json:"passed"`
	Message  string         `json:"message"`
	Errors   []Finding      `json:"errors"`
	Warnings []Finding      `json:"warnings"`
	Details  map[string]any `json:"details,omitempty"`
}

func newResult(gate string) *Result {
	return &Result{Gate: gate, Errors: []Finding{}, Warnings: []Finding{}, Details: map[string]any{}}
}

func (r *Result) fail(code, path, format string, args ...any) {
	r.Errors = append(r.Errors, Finding{Code: code, Path: path, Message: sprintf(format, args...)})
}

func (r *Result) warn(code, path, format string, args ...any) {
	r.Warnings = append(r.Warnings, Finding{Code: code, Path: path, Message: sprintf(format, args...)})
}

// done sets Passed and a summary message.
func (r *Result) done(ok string) *Result {
	r.Passed = len(r.Errors) == 0
	if r.Passed {
		if r.Message == "" {
			r.Message = ok
		}
	} else {
		r.Message = sprintf("%d error(s); first: %s: %s", len(r.Errors), r.Errors[0].Code, r.Errors[0].Message)
	}
	return r
}

// WriteText writes results for people: a PASS or FAIL line per gate with
// its message, then a line per error and warning.
func WriteText(w io.Writer, results []Result) error {
	for _, r := range results {
		mark := "PASS"
		if !r.Passed {
			mark = "FAIL"
		}
		if _, err := fmt.Fprintf(w, "  %s %-9s %s\n", mark, r.Gate, r.Message); err != nil {
			return err
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "       error   %s %s: %s\n", e.Code, e.Path, e.Message)
		}
		for _, e := range r.Warnings {
			fmt.Fprintf(w, "       warning %s %s: %s\n", e.Code, e.Path, e.Message)
		}
	}
	return nil
}
