package routecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gatecmd"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/pkg/ledger"
)

// Session 32's attack on the count across tiers and the classifier's
// reservations (count.go, askFirst/plan/reserve).

// ledgerCount reads a session's entries in the three tier ledgers as the
// ledger holds them, apart from cp-route's bookkeeping: the sum of what
// they spend (spends), the count the newest entries say (the largest
// count-after of each tier's newest; -1 when one records none), and the
// classifier calls the decisions record. It checks each decision that
// names a reservation names one of the session's ROUTE_RESERVEDs in its
// own tier, and that no two name the same.
func ledgerCount(t *testing.T, root, session string) (sum, newest, called int64) {
	t.Helper()
	for _, id := range countPlanes {
		dir, err := plane.Dir(root, id)
		require.NoError(t, err)
		s, _, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{Name: "reader"})
		require.NoError(t, err)
		reserved, named := map[string]bool{}, map[string]bool{}
		var last *ledger.Entry
		err = s.Find(context.Background(), ledger.Query{EventTypes: countTypes, Subject: session}, func(e *ledger.Entry) bool {
			sum += spends(e.Metadata)
			if e.EventType == EventReserved {
				reserved[e.ID] = true
			}
			if res, ok := e.Metadata["reservation"].(string); ok {
				require.True(t, reserved[res], "%s seq %d names reservation %s, not an earlier one of the session in its tier", id, e.Seq, res)
				require.False(t, named[res], "%s seq %d: reservation %s named twice", id, e.Seq, res)
				named[res] = true
			}
			if cm, ok := e.Metadata["classifier"].(map[string]any); ok && cm["called"] == true {
				called++
			}
			last = e
			return true
		})
		s.Close()
		require.NoError(t, err)
		if last != nil && newest >= 0 {
			if after, ok := countAfter(last.Metadata); ok {
				newest = max(newest, after)
			} else {
				newest = -1
			}
		}
	}
	return sum, newest, called
}

// TestMixedPlaneStreamsRace: streams whose lines each name their tier
// ("plane": ho3, ho2, ho1) mixing llm_assisted routes, requests the
// classifier decides, rule-decided ones, two sessions and replay lines,
// race single runs in every tier. The limit (2) holds for each session
// across the three tiers: the calls the ledgers record sum to at most two
// (exactly two: the demand is far above), the newest entries' count is the
// sum, every classifier call made is recorded by a decision, and every
// reservation is settled by at most one decision of its tier.
func TestMixedPlaneStreamsRace(t *testing.T) {
	planes := []string{"ho3", "ho2", "ho1"}
	intents := []string{"deploy", "chat", "status"}
	for round := range 3 {
		root := newPlane(t, testPolicy)
		seed := must(t, Run, `{"intent":"status"}`, "--root", root)
		replaySeq := gjson.Get(seed, "result.decision_seq").Int()
		a, b := fmt.Sprintf("SES-20261207-a32a%04x", round), fmt.Sprintf("SES-20261207-b32b%04x", round)
		var calls atomic.Int64
		clf := slowClassifier{countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}}
		rng := rand.New(rand.NewPCG(uint64(round), 32))
		var wg sync.WaitGroup
		for i := range 4 {
			var in strings.Builder
			for j := range 12 {
				s := a
				if (i+j)%3 == 0 {
					s = b
				}
				if j%5 == 4 {
					fmt.Fprintf(&in, `{"replay":%d,"plane":"ho3"}`+"\n", replaySeq)
					continue
				}
				fmt.Fprintf(&in, `{"intent":%q,"plane":%q,"session_id":%q,"variables":{"i":%d}}`+"\n",
					intents[rng.IntN(3)], planes[rng.IntN(3)], s, 100*i+j)
			}
			wg.Go(func() { run(t, with(clf), in.String(), "--root", root) })
		}
		for i := range 6 {
			p, s, intent := planes[i%3], []string{a, b}[i%2], intents[i%2]
			wg.Go(func() {
				run(t, with(clf), fmt.Sprintf(`{"intent":%q}`, intent), "--root", root, "--plane", p, "--session", s)
			})
		}
		wg.Wait()
		var recorded int64
		for _, s := range []string{a, b} {
			sum, newest, called := ledgerCount(t, root, s)
			recorded += called
			require.EqualValues(t, 2, sum, "round %d, %s: the calls recorded across the tiers", round, s)
			require.Equal(t, sum, newest, "round %d, %s: the newest entries' count and the sum", round, s)
		}
		require.Equal(t, calls.Load(), recorded, "round %d: every classifier call made is recorded by a decision", round)
		for _, p := range planes {
			must(t, ledgercmd.Run, "", "verify", "--root", root, "--plane", p)
		}
	}
}

// TestReplayOfReservationRefused: a ROUTE_RESERVED is no decision:
// --replay of its seq is ROUTE_REPLAY_INVALID; the decision that settled
// it replays to the same answer, in HO1 where both were recorded.
func TestReplayOfReservationRefused(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-3e5e3e5e"
	clf := fakeClassifier{handler: "default", conf: "0.9"}
	out := must(t, with(clf), `{"intent":"chat"}`, "--root", root, "--plane", "ho1", "--session", ses)
	dseq := gjson.Get(out, "result.decision_seq").Int()
	res := lines(must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho1", "--event-type", EventReserved, "--submission-id", ses))
	require.Len(t, res, 1)
	rseq := gjson.Get(res[0], "seq").Int()
	code, out, _ := run(t, Run, "", "--root", root, "--plane", "ho1", "--replay", itoa(rseq))
	require.NotEqual(t, 0, code)
	require.Equal(t, "ROUTE_REPLAY_INVALID", gjson.Get(out, "error.code").String(), out)
	out = must(t, Run, "", "--root", root, "--plane", "ho1", "--replay", itoa(dseq))
	require.True(t, gjson.Get(out, "result.same").Bool(), out)
	// Replayed in a stream beside new decisions in the session: the
	// reservation's line ends the stream with its refusal, nothing else
	// recorded after it.
	_, out, _ = run(t, with(clf), fmt.Sprintf("{\"replay\":%d}\n{\"intent\":\"deploy\"}\n", rseq), "--root", root, "--plane", "ho1", "--session", ses)
	ls := lines(out)
	require.Equal(t, "ROUTE_REPLAY_INVALID", gjson.Get(ls[0], "error.code").String(), out)
	sum, newest, _ := ledgerCount(t, root, ses)
	require.EqualValues(t, 1, sum)
	require.EqualValues(t, 1, newest)
}

// TestRouteSessionLockNotFollowed: whoever can write the plane's files may
// put a symbolic link or a named pipe where the route-session lock goes
// (HO3's ledger/route-session.lock). cp-route in a limited session then
// refuses, at once, to follow the link (the file it names is not created
// or written) or to open the pipe (no hang), and decides nothing.
func TestRouteSessionLockNotFollowed(t *testing.T) {
	for _, kind := range []string{"symlink", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			root := newPlane(t, testPolicy)
			lock := filepath.Join(root, "ledger", sessionLockKey+".lock")
			os.Remove(lock)
			target := filepath.Join(t.TempDir(), "elsewhere")
			switch kind {
			case "symlink":
				require.NoError(t, os.Symlink(target, lock))
			case "fifo":
				require.NoError(t, syscall.Mkfifo(lock, 0o644))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan struct{})
			var code int
			var out string
			go func() {
				defer close(done)
				var o, e strings.Builder
				code = Run(ctx, []string{"--root", root, "--session", "SES-20261207-10c410c4"},
					strings.NewReader(`{"intent":"deploy"}`), &o, &e)
				out = o.String() + e.String()
			}()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("cp-route still running after 15 s with a %s at %s", kind, lock)
			}
			require.NotEqual(t, 0, code, out)
			_, err := os.Lstat(target)
			require.ErrorIs(t, err, os.ErrNotExist, "the link was followed: %s", out)
			show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", EventType, "--submission-id", "SES-20261207-10c410c4")
			require.Empty(t, strings.TrimSpace(show), "a decision recorded without the lock")
			// G6 says what is there.
			code, gout, _ := run(t, gatecmd.Run, "", "check", "--gate", "G6", "--root", root)
			require.NotEqual(t, 0, code, gout)
			require.Contains(t, gout, "LEDGER_UNSAFE")
			require.Contains(t, gout, sessionLockKey+".lock")
		})
	}
}

// blockingClassifier marks that it was asked (a file), then never
// answers: a model call out when the process is killed.
type blockingClassifier struct{ mark string }

func (b blockingClassifier) Classify(ctx context.Context, _ route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	os.WriteFile(b.mark, []byte("asked"), 0o644)
	<-ctx.Done()
	select {}
}

// TestKilledDuringClassifierCall: a cp-route process (this test binary,
// run again) is SIGKILLed while its classifier call is out, after the
// call's reservation. While the call is out, another process routes in
// the session at once (no lock held across the call) and counts the
// reserved call; after the kill the ledgers verify, the reservation stays
// spent (limit 2: one more llm_assisted route, then a refusal), and the
// next runs do not wait for a lock the dead process held.
func TestKilledDuringClassifierCall(t *testing.T) {
	if env := os.Getenv("CP_ATTACK32_CHILD"); env != "" {
		args := strings.Split(env, ",")
		code := RunWith(context.Background(), blockingClassifier{mark: args[2]}, cli.Options{}, []string{"--root", args[0], "--plane", "ho1", "--session", args[1]},
			strings.NewReader(`{"intent":"chat"}`), os.Stdout, os.Stderr)
		os.Exit(code)
	}
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-c111ed01"
	mark := filepath.Join(t.TempDir(), "asked")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledDuringClassifierCall$", "-test.count=1")
	// The plane's keys are under the XDG_CONFIG_HOME newPlane set:
	// testenv.Main keeps CP_TESTENV_CONFIG's.
	cmd.Env = append(os.Environ(), "CP_ATTACK32_CHILD="+root+","+ses+","+mark, "CP_TESTENV_CONFIG="+os.Getenv("XDG_CONFIG_HOME"))
	var childOut strings.Builder
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("the child ended before asking its classifier: %s", childOut.String())
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "the child never asked its classifier")
	}
	// The call is out: another process routes in the session meanwhile,
	// at once, counting the reservation (one of two).
	t0 := time.Now()
	must(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho2", "--session", ses)
	require.Less(t, time.Since(t0), 5*time.Second, "a run waited while another's classifier call was out")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-exited

	t0 = time.Now()
	code, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", ses)
	require.Less(t, time.Since(t0), 5*time.Second, "the next run waited for the killed process's lock")
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), "code %d: the killed run's reserved call, and the deploy, spent the session's two: %s", code, out)
	sum, newest, _ := ledgerCount(t, root, ses)
	require.EqualValues(t, 2, sum)
	require.EqualValues(t, 2, newest)
	require.Len(t, lines(must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho1", "--event-type", EventReserved, "--submission-id", ses)), 1)
	for _, p := range countPlanes {
		must(t, ledgercmd.Run, "", "verify", "--root", root, "--plane", p)
	}
}

// TestRouteBesideLimitedStream: the route-session lock is one for the
// whole plane (every session, every tier), taken for each batch of a
// limited stream, back to back (the next batch is prepared while one is
// decided: pipeline). A single cp-route run in another session, in
// another tier, beside a long limited stream must still get the lock well
// within its timeout (lockfile.Lock polls: LOCK_NB, sleeping up to 5 ms),
// as cp-ledger append beside the stream does (TestWriterBesideLimitedStream).
func TestRouteBesideLimitedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("a long stream")
	}
	root := newPlane(t, testPolicy)
	var in strings.Builder
	for i := range 300_000 {
		fmt.Fprintf(&in, `{"intent":"status","variables":{"i":%d}}`+"\n", i)
	}
	done := make(chan struct{})
	var code int
	var errs string
	go func() {
		defer close(done)
		code, _, errs = run(t, Run, in.String(), "--root", root, "--session", "SES-20261207-5a5a0032")
	}()
	besideStream(t, done, "routes", func() (int, string, string) {
		return run(t, Run, `{"intent":"status"}`, "--root", root, "--plane", "ho1", "--session", "SES-20261207-5b5b0032")
	})
	require.Equal(t, 0, code, errs)
}

// TestGateBesideRouteSessionLock: the route-session lock file cp-route
// leaves in HO3's ledger directory (with a reservation and decisions in
// every tier) is no finding of G6, in any tier; the whole plane's gates
// still pass.
func TestGateBesideRouteSessionLock(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-9a7e9a7e"
	clf := fakeClassifier{handler: "default", conf: "0.9"}
	for _, p := range countPlanes {
		must(t, with(clf), "{\"intent\":\"status\"}\n{\"intent\":\"chat\"}\n", "--root", root, "--plane", p, "--session", ses)
	}
	_, err := os.Lstat(filepath.Join(root, "ledger", sessionLockKey+".lock"))
	require.NoError(t, err)
	for _, p := range countPlanes {
		out := must(t, gatecmd.Run, "", "check", "--gate", "G6", "--root", root, "--plane", p)
		require.NotContains(t, out, "route-session", p)
	}
	must(t, gatecmd.Run, "", "check", "--root", root)
}

// TestWorkerStreamLinesStayInItsTier: a worker's token allows HO1 and its
// own session. A stream's line may name its tier ("plane") and its
// session: each line is held to the token as a single request is, so a
// line naming HO3 or HO2, or another session or work order, records
// nothing there (refused, or held to --plane), whatever the stream was
// started with (--plane ho1, or no --plane and the first line's tier).
func TestWorkerStreamLinesStayInItsTier(t *testing.T) {
	root := newPlane(t, testPolicy)
	const wo, ses = "WO-20261207-032", "SES-20261207-0d0d0032"
	worker := func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		cl := &auth.Claims{Subject: "worker-1", Role: "worker", Tiers: []string{"ho1"}, WorkOrder: wo, Session: ses}
		return cli.RunWith(ctx, tool(&router{}), cli.Options{Identity: cli.Identity{Subject: cl.Subject, Auth: auth.AuthToken, Claims: cl}}, args, stdin, stdout, stderr)
	}
	for _, first := range []string{`{"intent":"status"}`, `{"intent":"status","plane":"ho1"}`} {
		for _, line := range []string{`{"intent":"status","plane":"ho3"}`, `{"intent":"status","plane":"ho2"}`,
			`{"intent":"status","session_id":"SES-20261207-ffff0032"}`, `{"intent":"status","work_order_id":"WO-20261207-999"}`} {
			args := []string{"--root", root}
			if !strings.Contains(first, "plane") {
				args = append(args, "--plane", "ho1")
			}
			_, out, _ := run(t, worker, first+"\n"+line+"\n", args...)
			ls := lines(out)
			require.Equal(t, "ok", gjson.Get(ls[0], "status").String(), out)
			if len(ls) > 1 && gjson.Get(ls[1], "status").String() == "ok" {
				require.Equal(t, ses, gjson.Get(ls[1], "result.session_id").String(), "%s: %s", line, out)
				require.Equal(t, wo, gjson.Get(ls[1], "result.work_order_id").String(), "%s: %s", line, out)
			}
		}
	}
	for _, p := range []string{"ho3", "ho2"} {
		show := must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", p, "--event-type", EventType)
		require.Empty(t, strings.TrimSpace(show), "a worker's line recorded a decision in %s", p)
	}
}

// TestStreamCountsOthersAcrossTiersAndLegacy: one stream in a session
// whose count is summed (an HO2 entry recorded with no count: the legacy
// path), its lines in three tiers, while other processes spend the
// session's calls in other tiers between its reservation and the decision
// that settles it, and between its batches. Limit 5: the legacy call, the
// stream's reserved classifier call, the two others' deploys, the
// stream's deploy: five; then the stream's chat finds no room (not asked)
// and its last deploy is refused. Every tier's entries sum to five, and a
// new run counts five.
func TestStreamCountsOthersAcrossTiersAndLegacy(t *testing.T) {
	root := newPlane(t, strings.Replace(testPolicy, `"llm_calls_per_session": 2`, `"llm_calls_per_session": 5`, 1))
	const ses = "SES-20261207-1e9a0032"
	dir, err := plane.Dir(root, "ho2")
	require.NoError(t, err)
	l, _, err := plane.OpenLedger(dir, plane.ForAppend, plane.Actor{Name: "legacy"})
	require.NoError(t, err)
	_, err = l.Append(context.Background(), []ledger.Draft{{EventType: EventType, SubmissionID: ses, Decision: "ROUTED",
		Metadata: map[string]any{"llm_calls": json.Number("1")}}})
	require.NoError(t, err)
	l.Close()

	var calls atomic.Int64
	clf := meddlingClassifier{countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}, func() {
		if calls.Load() > 0 {
			return
		}
		must(t, Run, `{"intent":"deploy","variables":{"by":"other"}}`, "--root", root, "--plane", "ho3", "--session", ses)
		must(t, Run, `{"intent":"deploy","variables":{"by":"other"}}`, "--root", root, "--plane", "ho2", "--session", ses)
	}}
	in := strings.Join([]string{
		`{"intent":"chat","plane":"ho1"}`,
		`{"intent":"status","plane":"ho3"}`,
		`{"intent":"deploy","plane":"ho2"}`,
		`{"intent":"chat","plane":"ho3"}`,
		`{"intent":"deploy","plane":"ho1"}`,
	}, "\n") + "\n"
	_, out, errs := run(t, with(clf), in, "--root", root, "--session", ses)
	ls := lines(out)
	require.Len(t, ls, 5, "%s\n%s", out, errs)
	require.Equal(t, "accepted", gjson.Get(ls[0], "evidence.route.classifier.outcome").String(), ls[0])
	require.Equal(t, "ok", gjson.Get(ls[1], "status").String(), ls[1])
	require.Equal(t, "ok", gjson.Get(ls[2], "status").String(), "the fifth call: %s", ls[2])
	require.Equal(t, "limit_reached", gjson.Get(ls[3], "evidence.route.classifier.outcome").String(), ls[3])
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(ls[4], "error.code").String(), ls[4])
	require.EqualValues(t, 1, calls.Load())
	sum, _, called := ledgerCount(t, root, ses)
	require.EqualValues(t, 5, sum)
	require.EqualValues(t, 1, called)
	_, out, _ = run(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho1", "--session", ses)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), out)
}

// TestWorkerSessionOfOtherTypes: a worker's request whose session_id is
// not a string (a number, a boolean, an object, an array), or whose
// "plane" is not one, does not step out of its session's limit (2): at
// most two llm_assisted routes of four, and nothing outside HO1.
func TestWorkerSessionOfOtherTypes(t *testing.T) {
	const wo, ses = "WO-20261207-033", "SES-20261207-0e0e0033"
	worker := func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		cl := &auth.Claims{Subject: "worker-1", Role: "worker", Tiers: []string{"ho1"}, WorkOrder: wo, Session: ses}
		return cli.RunWith(ctx, tool(&router{}), cli.Options{Identity: cli.Identity{Subject: cl.Subject, Auth: auth.AuthToken, Claims: cl}}, args, stdin, stdout, stderr)
	}
	for _, req := range []string{`{"intent":"deploy","session_id":5}`, `{"intent":"deploy","session_id":true}`,
		`{"intent":"deploy","session_id":{}}`, `{"intent":"deploy","session_id":["x"]}`, `{"intent":"deploy","plane":5}`} {
		root := newPlane(t, testPolicy)
		var b strings.Builder
		for range 4 {
			b.WriteString(req + "\n")
		}
		_, out, errs := run(t, worker, b.String(), "--root", root, "--plane", "ho1")
		routed := 0
		for _, l := range lines(out) {
			if gjson.Get(l, "status").String() == "ok" {
				routed++
			}
		}
		require.LessOrEqual(t, routed, 2, "%s: a worker's session allows two calls:\n%s\n%s", req, out, errs)
		show := must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho3", "--event-type", EventType)
		require.Empty(t, strings.TrimSpace(show), "%s: a decision in HO3", req)
	}
}

// TestPipelinedStreamRunsEndedEarly: a long stream (batches large enough
// to be prepared on every core, and ahead of their turn: pipeline) in one
// limited session (limit 10000: never reached), its runs ended early by
// classifier requests after llm_assisted ones (askFirst stops planning
// there), by tier changes and by replay lines. Every line is answered in
// order, each answer the decision of its own line (its variables), each
// decision recording its own request, and the session's count, summed or
// from the newest entries, is the calls decided.
func TestPipelinedStreamRunsEndedEarly(t *testing.T) {
	root := newPlane(t, strings.Replace(testPolicy, `"llm_calls_per_session": 2`, `"llm_calls_per_session": 10000`, 1))
	const ses = "SES-20261207-919e0032"
	seed := must(t, Run, `{"intent":"status"}`, "--root", root)
	replaySeq := gjson.Get(seed, "result.decision_seq").Int()
	var calls atomic.Int64
	clf := countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}
	rng := rand.New(rand.NewPCG(32, 32))
	var in strings.Builder
	const n = 3000
	kinds := make([]string, n)
	for i := range n {
		switch r := rng.IntN(100); {
		case r < 2:
			kinds[i] = "replay"
			fmt.Fprintf(&in, `{"replay":%d,"plane":"ho3"}`+"\n", replaySeq)
			continue
		case r < 10:
			kinds[i] = "deploy"
		case r < 16:
			kinds[i] = "chat"
		default:
			kinds[i] = "status"
		}
		p := "ho3"
		if rng.IntN(20) == 0 {
			p = []string{"ho2", "ho1"}[rng.IntN(2)]
		}
		fmt.Fprintf(&in, `{"intent":%q,"plane":%q,"variables":{"i":%d}}`+"\n", kinds[i], p, i)
	}
	_, out, errs := run(t, with(clf), in.String(), "--root", root, "--session", ses)
	ls := lines(out)
	require.Len(t, ls, n, errs)
	want := int64(0)
	for i, l := range ls {
		require.Equal(t, "ok", gjson.Get(l, "status").String(), "line %d: %s", i, l)
		if kinds[i] == "replay" {
			require.True(t, gjson.Get(l, "result.same").Bool(), l)
			continue
		}
		require.EqualValues(t, i, gjson.Get(l, "result.variables.i").Int(), "line %d answered with another's decision: %s", i, l)
		if kinds[i] != "status" {
			want++
		}
	}
	require.Equal(t, calls.Load(), int64(strings.Count(in.String(), `"chat"`)))
	sum, newest, called := ledgerCount(t, root, ses)
	require.Equal(t, want, sum)
	require.Equal(t, want, newest)
	require.Equal(t, calls.Load(), called)
}

// TestForgedRouteEntriesRefused: cp-ledger append refuses the ROUTE_
// family in any spelling (case, spaces around it), so no entry that the
// session's count reads can be forged through it to lower the count
// (a newest entry saying none spent, a decision naming a reservation to
// give its call back); a NOTE carrying the same metadata under the
// session's submission_id is not read by the count.
func TestForgedRouteEntriesRefused(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-f0f00032"
	must(t, Run, "{\"intent\":\"deploy\"}\n{\"intent\":\"deploy\"}\n", "--root", root, "--plane", "ho1", "--session", ses)
	meta := `{"llm_calls":0,"session_llm_calls":0,"reservation":"LED-0000000000000000"}`
	for _, et := range []string{"ROUTE_DECISION", "route_decision", " ROUTE_RESERVED", "Route_Reserved ", "ROUTE_ANYTHING"} {
		for _, p := range countPlanes {
			code, out, _ := run(t, ledgercmd.Run, "", "append", "--root", root, "--plane", p, "--event-type", et, "--submission-id", ses, "--metadata", meta)
			require.NotEqual(t, 0, code, "%q in %s: %s", et, p, out)
			require.Equal(t, "RESERVED_EVENT_TYPE", gjson.Get(out, "error.code").String(), out)
		}
	}
	must(t, ledgercmd.Run, "", "append", "--root", root, "--plane", "ho1", "--event-type", "NOTE", "--submission-id", ses, "--metadata", meta)
	_, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho2", "--session", ses)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), out)
}

// TestSessionLimitWithTierRoots: --root naming a lower tier's directory
// (planes/ho1, planes/ho2) is that tier; the session's count and the
// route-session lock are still the whole plane's (HO3's lock file, no
// other made beside the lower tiers' ledgers): two routed of six, in turn
// and at once.
func TestSessionLimitWithTierRoots(t *testing.T) {
	root := newPlane(t, testPolicy)
	roots := []string{filepath.Join(root, "planes", "ho1"), filepath.Join(root, "planes", "ho2"), root}
	const ses = "SES-20261207-4004a032"
	var routed atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if code, _, _ := run(t, Run, `{"intent":"deploy"}`, "--root", roots[i%3], "--session", ses); code == 0 {
				routed.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 2, routed.Load())
	for _, p := range []string{"ho1", "ho2"} {
		_, err := os.Lstat(filepath.Join(root, "planes", p, "ledger", sessionLockKey+".lock"))
		require.ErrorIs(t, err, os.ErrNotExist, "a route-session lock beside %s's ledger: not the plane's", p)
	}
	sum, newest, _ := ledgerCount(t, root, ses)
	require.EqualValues(t, 2, sum)
	require.EqualValues(t, 2, newest)
}

// TestRollbackBesideRouteSessionLock: a config upgrade raising the limit
// (2 to 3) and the rollback to the checkpoint before it, with the
// route-session lock file in HO3's ledger directory and a session's calls
// spent in two tiers: install and rollback pass their gates, the lock file
// stays a regular file cp-route goes on using, and the session's count
// survives both (3 spent: the restored limit of 2 refuses).
func TestRollbackBesideRouteSessionLock(t *testing.T) {
	root := newPlane(t, testPolicy)
	dir := filepath.Dir(root)
	const ses = "SES-20261207-0b0b0032"
	ckpt := must(t, installcmd.Run, "", "checkpoint", "--label", "limit 2", "--root", root)
	vid := gjson.Get(ckpt, "result.version_id").String()
	require.NotEmpty(t, vid, ckpt)
	must(t, Run, "{\"intent\":\"deploy\"}\n{\"intent\":\"deploy\"}\n", "--root", root, "--plane", "ho1", "--session", ses)

	conf := filepath.Join(dir, "opconf")
	writeFile(t, filepath.Join(conf, "config", "router_policy.json"), strings.Replace(testPolicy, `"llm_calls_per_session": 2`, `"llm_calls_per_session": 3`, 1))
	mp := filepath.Join(conf, "manifest.json")
	b, err := os.ReadFile(mp)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	doc["version"] = "0.2.0"
	b, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(mp, b, 0o644))
	must(t, pkgcmd.Run, "", "stage", "PKG-CONFIG-001", "--root", root, "--src", conf, "--out", filepath.Join(dir, "v2"))
	arch := filepath.Join(dir, "v2", "PKG-CONFIG-001.tar.gz")
	must(t, pkgcmd.Run, "", "sign", "--archive", arch, "--key", filepath.Join(dir, "ops.key"))
	must(t, installcmd.Run, "", "install", "--root", root, "--archive", arch)

	must(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho2", "--session", ses)
	_, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", ses)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), "limit 3: %s", out)

	must(t, installcmd.Run, "", "rollback", "--version-id", vid, "--root", root)
	fi, err := os.Lstat(filepath.Join(root, "ledger", sessionLockKey+".lock"))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
	_, out, _ = run(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho1", "--session", ses)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), "limit 2 again, 3 spent: %s", out)
	must(t, Run, `{"intent":"status"}`, "--root", root, "--session", ses)
	must(t, gatecmd.Run, "", "check", "--root", root)
}

// cancellingClassifier answers after a while, or, every few calls,
// cancels its run while asked (a signal, a caller gone): the run records
// no decision for it, and its reservation stays spent.
type cancellingClassifier struct {
	countingClassifier
	cancel context.CancelFunc
	every  int64
}

func (c cancellingClassifier) Classify(ctx context.Context, q route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	if n := c.calls.Add(1); c.every > 0 && n%c.every == 0 {
		c.cancel()
		<-ctx.Done()
		return "", "", nil, ctx.Err()
	}
	time.Sleep(10 * time.Millisecond)
	return c.fakeClassifier.Classify(ctx, q)
}

// TestRaceWithCancelledRuns: runs at once in two sessions (limit 6)
// across the three tiers, streams and singles, some cancelled while their
// classifier call is out. Whatever interleaving: each session's entries
// sum to at most six, the newest entries say the sum, every reservation is
// settled at most once in its own tier, and the ledgers verify.
func TestRaceWithCancelledRuns(t *testing.T) {
	root := newPlane(t, strings.Replace(testPolicy, `"llm_calls_per_session": 2`, `"llm_calls_per_session": 6`, 1))
	sessions := []string{"SES-20261207-ca0c0032", "SES-20261207-cb0c0032"}
	planes := []string{"ho3", "ho2", "ho1"}
	intents := []string{"deploy", "chat", "status", "chat"}
	var calls atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clf := cancellingClassifier{countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}, cancel, 5}
			rng := rand.New(rand.NewPCG(uint64(i), 33))
			var in strings.Builder
			for j := range 1 + rng.IntN(6) {
				fmt.Fprintf(&in, `{"intent":%q,"plane":%q,"session_id":%q,"variables":{"i":%d}}`+"\n",
					intents[rng.IntN(4)], planes[rng.IntN(3)], sessions[rng.IntN(2)], 100*i+j)
			}
			var o, e strings.Builder
			RunWith(ctx, clf, cli.Options{}, []string{"--root", root}, strings.NewReader(in.String()), &o, &e)
		})
	}
	wg.Wait()
	for _, s := range sessions {
		sum, newest, _ := ledgerCount(t, root, s)
		require.LessOrEqual(t, sum, int64(6), s)
		require.Equal(t, sum, newest, s)
	}
	for _, p := range planes {
		must(t, ledgercmd.Run, "", "verify", "--root", root, "--plane", p)
	}
}

// TestNegativeCallsDoNotGiveBack: an entry of the session whose llm_calls
// is negative (no tool writes one: written past the tools, as
// TestSessionCountFromNewest's forged counts are) spends nothing; it
// gives no calls back. Its count being none, it sends the reader down the
// summed path, where it must not lower the sum: two spent stay two, and
// the limit (2) refuses. One too large for an integer (1e30) spends more
// than any limit, not nothing.
func TestNegativeCallsDoNotGiveBack(t *testing.T) {
	root := newPlane(t, testPolicy)
	forge := func(ses string, calls json.Number) {
		dir, err := plane.Dir(root, "ho2")
		require.NoError(t, err)
		l, _, err := plane.OpenLedger(dir, plane.ForAppend, plane.Actor{Name: "forger"})
		require.NoError(t, err)
		defer l.Close()
		_, err = l.Append(context.Background(), []ledger.Draft{{EventType: EventType, SubmissionID: ses, Decision: "ROUTED",
			Metadata: map[string]any{"llm_calls": calls}}})
		require.NoError(t, err)
	}
	const ses = "SES-20261207-0e9a0032"
	must(t, Run, "{\"intent\":\"deploy\"}\n{\"intent\":\"deploy\"}\n", "--root", root, "--plane", "ho1", "--session", ses)
	forge(ses, "-5")
	_, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", ses)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), "a negative llm_calls gave calls back: %s", out)

	const huge = "SES-20261207-1e300032"
	forge(huge, "1e30")
	_, out, _ = run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", huge)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String(), "llm_calls 1e30 read as none: %s", out)
}

// TestRouteSessionLockHardLinked: whoever can write the plane's files may
// make the route-session lock a hard link to HO3's ledger's own lock
// (ledger/governance.lock): a regular file, which G6 allows by its name.
// cp-route would then hold, as its route-session lock, the lock its own
// append to HO3 takes next (flock: the same inode, another open file),
// and wait for itself until LOCK_TIMEOUT: every limited route in HO3
// refused. The link is refused at once (LEDGER_LINKED, as a ledger's own
// files with another name are), nothing recorded; removed, the lock is
// made again.
func TestRouteSessionLockHardLinked(t *testing.T) {
	root := newPlane(t, testPolicy)
	lock := filepath.Join(root, "ledger", sessionLockKey+".lock")
	os.Remove(lock)
	require.NoError(t, os.Link(filepath.Join(root, "ledger", "governance.lock"), lock))
	t0 := time.Now()
	code, out, errs := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", "SES-20261207-11a40032")
	took := time.Since(t0)
	require.Less(t, took, ledger.DefaultLockTimeout/2, "exit %d after %v: %s %s", code, took, out, errs)
	require.Equal(t, "LEDGER_LINKED", gjson.Get(out, "error.code").String(), "%s %s", out, errs)
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", EventType, "--submission-id", "SES-20261207-11a40032")
	require.Empty(t, strings.TrimSpace(show), "a decision recorded without the lock")
	// Removed, it is made again, a file of its own.
	require.NoError(t, os.Remove(lock))
	must(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", "SES-20261207-11a40032")
}

// TestRouteBesideLimitedStreams is TestRouteBesideLimitedStream with three
// long limited streams at once, each in a session and a tier of its own:
// before the lock was one for the plane, they did not contend (each held
// its own ledger's lock); now each batch of each takes the one lock. A
// single route beside them must still get it well within its timeout.
func TestRouteBesideLimitedStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("long streams")
	}
	root := newPlane(t, testPolicy)
	var in strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&in, `{"intent":"status","variables":{"i":%d}}`+"\n", i)
	}
	var streams sync.WaitGroup
	var failed atomic.Int64
	for i, p := range countPlanes {
		streams.Go(func() {
			if code, _, errs := run(t, Run, in.String(), "--root", root, "--plane", p, "--session", fmt.Sprintf("SES-20261207-5a5a%04x", i)); code != 0 {
				failed.Add(1)
				t.Logf("stream in %s: exit %d: %s", p, code, errs)
			}
		})
	}
	done := make(chan struct{})
	go func() { streams.Wait(); close(done) }()
	besideStream(t, done, "routes", func() (int, string, string) {
		return run(t, Run, `{"intent":"status"}`, "--root", root, "--plane", "ho1", "--session", "SES-20261207-5b5b0033")
	})
	require.Zero(t, failed.Load(), "a stream failed")
}
