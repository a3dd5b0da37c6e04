package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
)

// pipeLog is what a pipelined verb did, in the order it did it.
type pipeLog struct {
	mu    sync.Mutex
	steps []string
}

func (l *pipeLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, s)
}

func (l *pipeLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.steps...)
}

// pipelinedTool's stream verb logs "ahead NAME" when Pipeline starts a
// request and "commit NAME" when it is finished (in order); a request
// named "boom" fails when finished. The tier is the request's "n" (ho1
// unless 3).
func pipelinedTool(log *pipeLog) *Tool {
	t := echoTool()
	v := t.Verbs[1]
	v.Action, v.Tier = ActionAppend, TierHO3
	v.Scope = func(c *Call, req Request) (string, string, string, error) {
		if n, _, _ := req.Int("n"); n == 3 {
			return "", "ho3", "", nil
		}
		return "", "ho1", "", nil
	}
	commit := func(reqs []Request) []Outcome {
		var outs []Outcome
		for _, req := range reqs {
			log.add("commit " + req.String("name"))
			if req.String("name") == "boom" {
				return append(outs, Outcome{Err: Errorf(ExitDenied, "BOOM", "went boom")})
			}
			outs = append(outs, Outcome{Result: map[string]any{"name": req.String("name")}})
		}
		return outs
	}
	v.Batch = func(ctx context.Context, c *Call, reqs []Request) []Outcome { return commit(reqs) }
	v.Pipeline = func(ctx context.Context, c *Call, reqs []Request) func() []Outcome {
		for _, req := range reqs {
			log.add("ahead " + req.String("name"))
		}
		return func() []Outcome { return commit(reqs) }
	}
	return t
}

func pipelineRun(t *testing.T, log *pipeLog, g *fakeGuard, names []string, ns map[int]int) (int, []string, string) {
	t.Helper()
	var in strings.Builder
	for i, name := range names {
		fmt.Fprintf(&in, `{"name":%q,"n":%d}`+"\n", name, ns[i])
	}
	opts := Options{Env: &Env{}, Guard: g, Record: func(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
		log.add("denied " + a.Tier)
		return "LED-1", 7, nil
	}}
	var out, errb bytes.Buffer
	code := RunWith(context.Background(), pipelinedTool(log), opts, []string{"stream"}, strings.NewReader(in.String()), &out, &errb)
	var acked []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if i := strings.Index(l, `"name":"`); i >= 0 && strings.Contains(l, `"status":"ok"`) {
			acked = append(acked, strings.SplitN(l[i+8:], `"`, 2)[0])
		}
	}
	return code, acked, errb.String()
}

func names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("r%d", i)
	}
	return s
}

// TestPipelineStream: every request of a pipelined stream is finished and
// acknowledged once, in order; each is started before it is finished.
func TestPipelineStream(t *testing.T) {
	const n = 20_000
	var log pipeLog
	g := &fakeGuard{id: Identity{Subject: "alice", Auth: auth.AuthOff}}
	code, acked, stderr := pipelineRun(t, &log, g, names(n), nil)
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, names(n), acked)
	var commits []string
	started := map[string]bool{}
	for _, s := range log.all() {
		if name, ok := strings.CutPrefix(s, "ahead "); ok {
			started[name] = true
		} else if name, ok := strings.CutPrefix(s, "commit "); ok {
			require.True(t, started[name] || name == "r0", "%s finished before it was started", name)
			commits = append(commits, name)
		}
	}
	require.Equal(t, names(n), commits)
	require.Len(t, g.asked, 1, "one decision per Access")
}

// TestPipelineStopsAtFailure: a request that fails when finished ends the
// stream with its error; the requests before it are acknowledged, and no
// request after it is finished, whatever was started ahead.
func TestPipelineStopsAtFailure(t *testing.T) {
	for _, at := range []int{1, 2, 500, 9_000} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			var log pipeLog
			ns := names(20_000)
			ns[at] = "boom"
			g := &fakeGuard{id: Identity{Subject: "alice", Auth: auth.AuthOff}}
			code, acked, stderr := pipelineRun(t, &log, g, ns, nil)
			require.Equal(t, ExitDenied, code)
			require.Contains(t, stderr, "went boom")
			require.Equal(t, ns[:at], acked)
			var commits []string
			for _, s := range log.all() {
				if name, ok := strings.CutPrefix(s, "commit "); ok {
					commits = append(commits, name)
				}
			}
			require.Equal(t, ns[:at+1], commits, "nothing after the failure is finished")
		})
	}
}

// TestPipelineRefusalRecordedInOrder: a firewall refusal in a pipelined
// stream is recorded after the requests before it are finished, and not at
// all when one of them failed (the stream ended before it).
func TestPipelineRefusalRecordedInOrder(t *testing.T) {
	deny := func(a Access) error {
		if a.Tier == "ho3" {
			return Errorf(ExitDenied, "FIREWALL_DENIED", "a worker appends to HO1 only")
		}
		return nil
	}
	for _, at := range []int{1, 3000} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			var log pipeLog
			ns := names(at + 100)
			g := &fakeGuard{id: Identity{Subject: "w", Auth: auth.AuthToken}, deny: deny}
			code, acked, stderr := pipelineRun(t, &log, g, ns, map[int]int{at: 3})
			require.Equal(t, ExitDenied, code)
			require.Contains(t, stderr, "a worker appends to HO1 only")
			require.Equal(t, ns[:at], acked)
			var steps []string // what was applied (work prepared ahead may follow: it is not)
			for _, s := range log.all() {
				if !strings.HasPrefix(s, "ahead ") {
					steps = append(steps, s)
				}
			}
			require.Equal(t, "denied ho3", steps[len(steps)-1], "recorded last: %v", steps[max(0, len(steps)-3):])
			require.Equal(t, "commit "+ns[at-1], steps[len(steps)-2])

			// The same with a failure before the refused request.
			log = pipeLog{}
			ns[at/2] = "boom"
			g = &fakeGuard{id: Identity{Subject: "w", Auth: auth.AuthToken}, deny: deny}
			code, _, stderr = pipelineRun(t, &log, g, ns, map[int]int{at: 3})
			require.Equal(t, ExitDenied, code)
			require.Contains(t, stderr, "went boom")
			require.NotContains(t, stderr, "HO1 only")
			for _, s := range log.all() {
				require.NotEqual(t, "denied ho3", s, "a refusal after a failure is not recorded")
			}
		})
	}
}

// TestPipelineCancelled: a pipelined stream cancelled midway (SIGINT)
// ends CANCELLED; what was acknowledged was finished, and what was
// finished was acknowledged, in order.
func TestPipelineCancelled(t *testing.T) {
	var log pipeLog
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := range 5000 {
			fmt.Fprintf(pw, `{"name":"r%d"}`+"\n", i)
		}
		cancel()
		time.Sleep(50 * time.Millisecond) // stdin still open: the stream waits for more
		pw.Close()
	}()
	g := &fakeGuard{id: Identity{Subject: "alice", Auth: auth.AuthOff}}
	var out, errb bytes.Buffer
	code := RunWith(ctx, pipelinedTool(&log), Options{Env: &Env{}, Guard: g}, []string{"stream"}, pr, &out, &errb)
	require.Equal(t, ExitUnavailable, code, errb.String())
	require.Contains(t, errb.String(), "interrupted")
	var acked, commits []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if i := strings.Index(l, `"name":"`); i >= 0 && strings.Contains(l, `"status":"ok"`) {
			acked = append(acked, strings.SplitN(l[i+8:], `"`, 2)[0])
		}
	}
	for _, s := range log.all() {
		if name, ok := strings.CutPrefix(s, "commit "); ok {
			commits = append(commits, name)
		}
	}
	require.Equal(t, commits, acked)
	require.Equal(t, names(len(acked)), acked)
}
