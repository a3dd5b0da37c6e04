package routecmd

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
)

// TestWorkerCannotLeaveItsSessionsLimit: a worker's token names its
// session, and the limit (2) counts its calls there whatever the request
// says of session_id: an empty one, or one that is not a string, is not a
// way out of the session (the firewall lets a route without a session
// through: only another session is refused).
func TestWorkerCannotLeaveItsSessionsLimit(t *testing.T) {
	root := newPlane(t, testPolicy)
	const wo, ses = "WO-20261207-001", "SES-20261207-0b0b0b0b"
	worker := func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		cl := &auth.Claims{Subject: "worker-1", Role: "worker", Tiers: []string{"ho1"}, WorkOrder: wo, Session: ses}
		return cli.RunWith(ctx, tool(&router{}), cli.Options{Identity: cli.Identity{Subject: cl.Subject, Auth: auth.AuthToken, Claims: cl}}, args, stdin, stdout, stderr)
	}
	for _, req := range []string{`{"intent":"deploy","session_id":""}`, `{"intent":"deploy","session_id":null}`} {
		var b strings.Builder
		for range 4 {
			b.WriteString(req + "\n")
		}
		_, out, errs := run(t, worker, b.String(), "--root", root, "--plane", "ho1")
		ls := lines(out)
		routed := 0
		for _, l := range ls {
			if gjson.Get(l, "ok").Bool() || gjson.Get(l, "result.handler").Exists() {
				routed++
			}
		}
		require.LessOrEqual(t, routed, 2, "%s: a worker's session allows two calls whatever session_id says:\n%s\n%s", req, out, errs)
		// A fresh plane for the next shape: the session is spent.
		root = newPlane(t, testPolicy)
	}
}

// TestSessionLimitAcrossTiers: a session's limit (2) counts its calls in
// every tier ledger its decisions go to: a caller who may route in two
// tiers (--plane ho2, --plane ho1) does not get the limit twice.
func TestSessionLimitAcrossTiers(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-0c0c0c0c"
	routed := 0
	for _, p := range []string{"ho2", "ho1", "ho2", "ho1"} {
		code, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", p, "--session", ses)
		if code == 0 {
			routed++
		}
		t.Logf("%s: %d %s", p, code, gjson.Get(out, "error.code").String())
	}
	require.Equal(t, 2, routed, "one session allowing two calls, routed in two tiers")
}
