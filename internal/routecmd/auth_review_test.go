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
	"github.com/control-plane/cp/internal/ledgercmd"
)

// TestRequestCannotStampMetadata: the members of a routed request that look
// like the plane's own stamps (_auth, _tier, _session_id, _work_order_id)
// stay inside metadata.request: a worker holding a token cannot make its
// decision look written without one (_auth "off"), at another tier, or in
// another session; and a request without a token that says _auth "on" is
// still stamped "off", once. A batch of NDJSON requests (the stream's
// path, drafted on several goroutines) is held to the same.
func TestRequestCannotStampMetadata(t *testing.T) {
	root := newPlane(t, testPolicy)
	const wo, ses = "WO-20261206-001", "SES-20261206-0a1b2c3d"
	worker := func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		cl := &auth.Claims{Subject: "worker-1", Role: "worker", Tiers: []string{"ho1"}, WorkOrder: wo, Session: ses}
		return cli.RunWith(ctx, tool(&router{}), cli.Options{Identity: cli.Identity{Subject: cl.Subject, Auth: auth.AuthToken, Claims: cl}}, args, stdin, stdout, stderr)
	}
	const sneaky = `{"intent":"status","_auth":"off","_tier":"ho3","_session_id":"SES-20261206-ffffffff","_work_order_id":"WO-20261206-999","metadata":{"_auth":"off"}}`
	check := func(t *testing.T, seq int64, authOff bool) {
		t.Helper()
		show := must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho1", "--seq", itoa(seq))
		m := gjson.Get(show, "metadata")
		require.Equal(t, "HO1", m.Get("_tier").String(), show)
		if authOff {
			require.Equal(t, "off", m.Get("_auth").String(), show)
		} else {
			require.False(t, m.Get("_auth").Exists(), show)
			require.Equal(t, ses, m.Get("_session_id").String(), show)
			require.Equal(t, wo, m.Get("_work_order_id").String(), show)
		}
		require.Equal(t, "off", m.Get("request._auth").String(), "kept as the request said it")
		require.Equal(t, 2, strings.Count(show, `"_auth"`), "the request's own two, and the stamp only without a token: %s", show)
	}

	out := must(t, worker, sneaky, "--root", root, "--plane", "ho1")
	seq := gjson.Get(out, "result.decision_seq").Int()
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho1", "--seq", itoa(seq))
	require.Equal(t, 2, strings.Count(show, `"_auth"`), show)
	check(t, seq, false)

	// The stream: enough requests to be prepared on every core.
	var b strings.Builder
	for range parallelFrom + 3 {
		b.WriteString(sneaky + "\n")
	}
	out = must(t, worker, b.String(), "--root", root, "--plane", "ho1")
	var seqs []int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		seqs = append(seqs, gjson.Get(line, "result.decision_seq").Int())
	}
	require.Len(t, seqs, parallelFrom+3, out)
	for _, s := range []int64{seqs[0], seqs[len(seqs)/2], seqs[len(seqs)-1]} {
		check(t, s, false)
	}

	// Without a token: stamped "off" once, whatever the request says.
	out = must(t, Run, strings.Replace(sneaky, `"_auth":"off"`, `"_auth":"on"`, 1), "--root", root, "--plane", "ho1")
	show = must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho1", "--seq", itoa(gjson.Get(out, "result.decision_seq").Int()))
	m := gjson.Get(show, "metadata")
	require.Equal(t, "off", m.Get("_auth").String(), show)
	require.Equal(t, "on", m.Get("request._auth").String(), show)
	require.Equal(t, "HO1", m.Get("_tier").String(), show)
}
