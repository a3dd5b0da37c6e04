package cli

import (
	"errors"
)

// finish prints one outcome and returns its exit code.
func (r *runner) finish(verb *Verb, o Outcome) int {
	if o.Err != nil {
		var rec interface{ RecordedAs() (id string, seq int64) }
		if o.LedgerEntryID == "" && errors.As(o.Err, &rec) {
			o.LedgerEntryID, o.Seq = rec.RecordedAs()
		}
		return r.failWith(AsError(o.Err), o)
	}
	if verb.Raw {
		return ExitOK
	}
	if render, ok := verb.Formats[r.call.Format]; ok {
		if err := render(r.out, o.Result); err != nil {
			return r.fail(err)
		}
		return ExitOK
	}
	if r.call.Format == "text" && (o.Result == nil || r.renderText(verb, o.Result, nil, o)) {
		return ExitOK // nothing to say is said with silence
	}
	r.writeEnvelope("ok", o.Result, nil, o)
	return ExitOK
}
