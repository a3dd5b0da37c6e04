package tracecmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/trace"
)

// TroubleshootResult is compliance troubleshoot's answer: the catalogue's
// rows for the code asked about, or for every code a gate emits when a
// gate is named (the seed's `troubleshoot --error G1`), or the whole
// catalogue when nothing is named.
type TroubleshootResult struct {
	Query string         `json:"query"`
	Codes []cli.CodeInfo `json:"codes"`
}

// troubleshoot serves the error catalogue (internal/cli: cli.Codes,
// cli.LookupCode). It reads no plane: the catalogue is the binaries' own,
// held complete against the sources by internal/cli's tests.
func troubleshoot(_ context.Context, _ *cli.Call, req cli.Request) cli.Outcome {
	q := strings.ToUpper(strings.TrimSpace(req.String("code")))
	r := &TroubleshootResult{Query: q, Codes: []cli.CodeInfo{}}
	switch {
	case q == "":
		r.Codes = cli.Codes()
	default:
		if info, ok := cli.LookupCode(q); ok {
			r.Codes = append(r.Codes, info)
			break
		}
		for _, info := range cli.Codes() {
			if slices.Contains(info.EmittedBy, q) {
				r.Codes = append(r.Codes, info)
			}
		}
		if len(r.Codes) == 0 {
			return cli.Outcome{Err: &cli.Error{Exit: cli.ExitUsage, Code: trace.CodeIDNotFound,
				Message: fmt.Sprintf("%q is neither an error code of the catalogue nor a gate that emits one", q),
				Hint:    "cp-trace compliance troubleshoot with no --error lists every code; cp-trace compliance gates lists the gates"}}
		}
	}
	return cli.Outcome{Result: r}
}

func troubleshootText(w io.Writer, result any) error {
	r := result.(*TroubleshootResult)
	for i, c := range r.Codes {
		if i > 0 {
			fmt.Fprintln(w)
		}
		by := strings.Join(c.EmittedBy, ", ")
		if by == "" {
			by = "nothing yet (reserved for a binary to come)"
		}
		fmt.Fprintf(w, "%s (exit %d)\n  what:       %s\n  fix:        %s\n  emitted by: %s\n", c.Code, c.Exit, c.Meaning, c.Fix, by)
	}
	return nil
}
