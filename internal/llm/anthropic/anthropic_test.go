package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm/anthropic"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/testenv"
)

// TestMain keeps anything an SDK might write out of the home directory.
func TestMain(m *testing.M) { testenv.Main(m) }

const key = "sk-ant-test-0123456789"

// server is a local Messages API: each request is checked for the shape
// the API requires and answered by the next step of the script.
type server struct {
	t      *testing.T
	mu     sync.Mutex
	steps  []func(w http.ResponseWriter, r *http.Request, body map[string]any)
	bodies []map[string]any
	closed chan struct{} // a step that waits for the client to hang up closes it
}

func newServer(t *testing.T, steps ...func(w http.ResponseWriter, r *http.Request, body map[string]any)) (*server, *httptest.Server) {
	s := &server{t: t, steps: steps, closed: make(chan struct{}, 8)}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ok := r.Method == http.MethodPost && r.URL.Path == "/v1/messages" &&
		(r.Header.Get("X-Api-Key") == key || r.Header.Get("Authorization") == "Bearer "+key) && r.Header.Get("Anthropic-Version") != "" &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil || !ok {
		s.t.Errorf("not a Messages API request: %s %s version=%q: %s", r.Method, r.URL.Path, r.Header.Get("Anthropic-Version"), b)
		w.WriteHeader(400)
		return
	}
	for _, f := range []string{"model", "max_tokens", "messages"} {
		if _, ok := body[f]; !ok {
			s.t.Errorf("request without %s: %s", f, b)
		}
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	n := len(s.bodies)
	s.mu.Unlock()
	if n > len(s.steps) {
		s.t.Errorf("request %d: the script has %d steps", n, len(s.steps))
		w.WriteHeader(500)
		return
	}
	s.steps[n-1](w, r, body)
}

func (s *server) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func message(text, stop string, in, out int) func(http.ResponseWriter, *http.Request, map[string]any) {
	return func(w http.ResponseWriter, _ *http.Request, body map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_01","type":"message","role":"assistant","model":"%s-20261001","content":[{"type":"text","text":%q}],"stop_reason":%q,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`,
			body["model"], text, stop, in, out)
	}
}

func apiError(status int, typ, msg string, header ...string) func(http.ResponseWriter, *http.Request, map[string]any) {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_1"}`, typ, msg)
	}
}

// events writes the SSE stream of a streamed message: message_start,
// content_block_start, one content_block_delta a piece, then (unless cut)
// content_block_stop, message_delta with the usage, message_stop. cut >= 0
// stops after that many deltas; wait makes it wait for the client to hang up.
func events(pieces []string, in, out int, cut int, wait bool) func(http.ResponseWriter, *http.Request, map[string]any) {
	return func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		send := func(typ, data string) {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
			fl.Flush()
		}
		send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","model":"%s-20261001","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1}}}`, body["model"], in))
		send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		send("ping", `{"type":"ping"}`)
		for i, p := range pieces {
			if i == cut {
				if wait {
					select {
					case <-r.Context().Done():
						// the client hung up
					case <-time.After(10 * time.Second):
						panic("the client never hung up")
					}
				}
				return
			}
			send("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%q}}`, p))
		}
		send("content_block_stop", `{"type":"content_block_stop","index":0}`)
		send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, out))
		send("message_stop", `{"type":"message_stop"}`)
	}
}

// streamError is an error event inside a 200 stream, before any text.
func streamError(typ string) func(http.ResponseWriter, *http.Request, map[string]any) {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":%q,\"message\":\"Overloaded\"}}\n\n", typ)
	}
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func open(t *testing.T, url string, sl *sleeps) *anthropic.Provider {
	// The process's own variables must not reach the client.
	t.Setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("ANTHROPIC_API_KEY", "sk-from-the-environment")
	p, err := anthropic.New(anthropic.Config{BaseURL: url, APIKey: key,
		Retry: provider.Retry{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second, Sleep: sl.sleep}})
	require.NoError(t, err)
	return p
}

func request() provider.Request {
	return provider.Request{Model: "claude-test", System: "be brief", Prompt: "say hi", MaxTokens: 64}
}

func TestAnthropic(t *testing.T) {
	type result struct {
		text     string
		code     string // "" for success
		status   int
		attempts int
		usage    provider.Usage
		sleeps   []time.Duration
		finish   string
	}
	for _, tc := range []struct {
		name   string
		stream bool
		req    func(*provider.Request)
		steps  []func(http.ResponseWriter, *http.Request, map[string]any)
		stop   int // stream: the delta callback fails after this many (0: never)
		want   result
		check  func(t *testing.T, s *server, err error)
	}{
		{name: "plain", steps: steps(message("hi there", "end_turn", 12, 3)),
			want: result{text: "hi there", attempts: 1, usage: provider.Usage{InputTokens: 12, OutputTokens: 3}, finish: "end_turn"},
			check: func(t *testing.T, s *server, _ error) {
				b := s.bodies[0]
				require.Equal(t, "claude-test", b["model"])
				require.EqualValues(t, 64, b["max_tokens"])
				require.Equal(t, []any{map[string]any{"type": "text", "text": "be brief"}}, b["system"])
				require.Equal(t, []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "say hi"}}}}, b["messages"])
				require.NotContains(t, b, "stream")
				require.NotContains(t, b, "temperature")
			}},
		{name: "streaming", stream: true, steps: steps(events([]string{"hi", " there"}, 12, 5, -1, false)),
			want:  result{text: "hi there", attempts: 1, usage: provider.Usage{InputTokens: 12, OutputTokens: 5}, finish: "end_turn"},
			check: func(t *testing.T, s *server, _ error) { require.Equal(t, true, s.bodies[0]["stream"]) }},
		{name: "structured", req: withSchema, steps: steps(message(`{"answer":"yes"}`, "end_turn", 20, 6)),
			want: result{text: `{"answer":"yes"}`, attempts: 1, usage: provider.Usage{InputTokens: 20, OutputTokens: 6}, finish: "end_turn"},
			check: func(t *testing.T, s *server, _ error) {
				oc := s.bodies[0]["output_config"].(map[string]any)["format"].(map[string]any)
				require.Equal(t, "json_schema", oc["type"])
				require.Equal(t, "object", oc["schema"].(map[string]any)["type"])
			}},
		{name: "structured streaming, not matching", stream: true, req: withSchema, steps: steps(events([]string{`{"answer":`, `42}`}, 20, 6, -1, false)),
			want: result{code: provider.CodeOutputInvalid, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 20, OutputTokens: 6}}},
		{name: "error: 400 is not retried", steps: steps(apiError(400, "invalid_request_error", "max_tokens: too large")),
			want: result{code: provider.CodeProviderError, status: 400, attempts: 1},
			check: func(t *testing.T, _ *server, err error) {
				require.ErrorContains(t, err, "invalid_request_error: max_tokens: too large")
			}},
		{name: "error: 401 is not retried", steps: steps(apiError(401, "authentication_error", "invalid x-api-key")),
			want: result{code: provider.CodeProviderError, status: 401, attempts: 1}},
		{name: "retry: 429 with retry-after, then success", steps: steps(apiError(429, "rate_limit_error", "slow down", "Retry-After", "2"), message("ok", "end_turn", 5, 1)),
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{2 * time.Second}, finish: "end_turn"}},
		{name: "retry: 529 overloaded twice, then success", steps: steps(apiError(529, "overloaded_error", "Overloaded"), apiError(529, "overloaded_error", "Overloaded"), message("ok", "end_turn", 5, 1)),
			want: result{text: "ok", attempts: 3, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, finish: "end_turn"}},
		{name: "retry: exhausted after 3 attempts", steps: steps(apiError(500, "api_error", "boom"), apiError(503, "api_error", "boom"), apiError(529, "overloaded_error", "Overloaded")),
			want: result{code: provider.CodeProviderError, status: 529, attempts: 3, sleeps: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}}},
		{name: "retry: a retry-after longer than allowed ends the loop", steps: steps(apiError(429, "rate_limit_error", "slow down", "Retry-After", "3600")),
			want: result{code: provider.CodeProviderError, status: 429, attempts: 1}},
		{name: "retry: an overloaded error event before any text", stream: true, steps: steps(streamError("overloaded_error"), events([]string{"ok"}, 5, 1, -1, false)),
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{100 * time.Millisecond}, finish: "end_turn"}},
		{name: "streaming: a 429 before the stream, retried", stream: true, steps: steps(apiError(429, "rate_limit_error", "slow down", "Retry-After", "1"), events([]string{"ok"}, 5, 1, -1, false)),
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{time.Second}, finish: "end_turn"}},
		{name: "stream cut after text: not retried, usage so far", stream: true, steps: steps(events([]string{"hi", " there", "!"}, 30, 9, 2, false)),
			want: result{code: provider.CodeProviderError, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 30, OutputTokens: 1}},
			check: func(t *testing.T, _ *server, err error) {
				require.ErrorContains(t, err, "before message_stop")
				require.Equal(t, "hi there", err.(*provider.Error).Text)
			}},
		{name: "stream cut before text: retried", stream: true, steps: steps(events([]string{"x"}, 30, 9, 0, false), events([]string{"ok"}, 30, 2, -1, false)),
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 60, OutputTokens: 3}, sleeps: []time.Duration{100 * time.Millisecond}, finish: "end_turn"}},
		{name: "cancel mid-stream: usage so far, the connection closed", stream: true, stop: 1, steps: steps(events([]string{"one", "two", "three"}, 40, 9, 1, true)),
			want: result{code: provider.CodeCancelled, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 40, OutputTokens: 1}}},
		{name: "a 200 that is not the API (a web page) is not retried", steps: steps(htmlPage),
			want: result{code: provider.CodeProviderError, status: 200, attempts: 1}},
		{name: "a connection cut mid-stream after text", stream: true, steps: steps(hardCut),
			want:  result{code: provider.CodeProviderError, attempts: 1, usage: provider.Usage{InputTokens: 11, OutputTokens: 1}},
			check: func(t *testing.T, _ *server, err error) { require.Equal(t, "par", err.(*provider.Error).Text) }},
		{name: "temperature is refused before any call", req: func(r *provider.Request) { t := 0.5; r.Temperature = &t },
			want: result{code: provider.CodeRequestInvalid}},
		{name: "a key echoed by the server stays out of the error", steps: steps(apiError(401, "authentication_error", "bad key "+key)),
			want: result{code: provider.CodeProviderError, status: 401, attempts: 1},
			check: func(t *testing.T, _ *server, err error) {
				require.NotContains(t, err.Error(), key)
				b, _ := json.Marshal(err.(*provider.Error).ErrorDetails())
				require.NotContains(t, string(b), key)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t, tc.steps...)
			sl := &sleeps{}
			p := open(t, ts.URL, sl)
			req := request()
			if tc.req != nil {
				tc.req(&req)
			}
			var resp *provider.Response
			var err error
			var streamed strings.Builder
			if tc.stream {
				n := 0
				resp, err = p.Stream(context.Background(), req, func(d provider.Delta) error {
					streamed.WriteString(d.Text)
					n++
					if tc.stop > 0 && n >= tc.stop {
						return errors.New("client went away")
					}
					return nil
				})
			} else {
				resp, err = p.Complete(context.Background(), req)
			}
			got := result{sleeps: sl.d}
			if err != nil {
				var pe *provider.Error
				require.ErrorAs(t, err, &pe)
				got.code, got.status, got.attempts, got.usage = pe.Code(), pe.Status, len(pe.Attempts), pe.Usage
				require.Equal(t, "anthropic", pe.Provider)
			} else {
				got.text, got.attempts, got.usage = resp.Text, len(resp.Attempts), resp.Usage
				got.finish = strings.Join(resp.FinishReasons, ",")
				require.Equal(t, "claude-test-20261001", resp.Model, "the model as the provider answered")
				require.Equal(t, "anthropic", resp.Provider)
				if tc.stream {
					require.Equal(t, resp.Text, streamed.String(), "the deltas make the text")
				}
				if req.Schema != nil {
					require.Equal(t, map[string]any{"answer": "yes"}, resp.Output)
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want.attempts, s.requests(), "one request an attempt: the SDK's own retries are off")
			if tc.check != nil {
				tc.check(t, s, err)
			}
		})
	}
}

func steps(f ...func(http.ResponseWriter, *http.Request, map[string]any)) []func(http.ResponseWriter, *http.Request, map[string]any) {
	return f
}

func withSchema(r *provider.Request) {
	r.Schema = map[string]any{"type": "object", "required": []any{"answer"}, "additionalProperties": false,
		"properties": map[string]any{"answer": map[string]any{"type": "string"}}}
}

// A context cancelled while the provider is slow ends the call: CANCELLED,
// exit 4, and no retry.
func TestAnthropicContextCancelled(t *testing.T) {
	_, ts := newServer(t, events([]string{"a", "b"}, 7, 2, 1, true))
	p := open(t, ts.URL, &sleeps{})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := p.Stream(ctx, request(), func(provider.Delta) error { cancel(); return nil })
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeCancelled, pe.Code())
	require.Equal(t, provider.Usage{InputTokens: 7, OutputTokens: 1}, pe.Usage)
	require.Len(t, pe.Attempts, 1)
}

// A server that never answers: each attempt times out, is retried, and
// the loop ends with PROVIDER_ERROR, status 0.
func TestAnthropicTimeout(t *testing.T) {
	block := func(w http.ResponseWriter, r *http.Request, _ map[string]any) { <-r.Context().Done() }
	s, ts := newServer(t, block, block)
	p, err := anthropic.New(anthropic.Config{BaseURL: ts.URL, APIKey: key,
		Retry: provider.Retry{MaxAttempts: 2, Timeout: 100 * time.Millisecond, Sleep: (&sleeps{}).sleep}})
	require.NoError(t, err)
	_, err = p.Complete(context.Background(), request())
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeProviderError, pe.Code())
	require.Equal(t, 0, pe.Status)
	require.Len(t, pe.Attempts, 2)
	require.Contains(t, pe.Attempts[0].Error, "no answer within")
	require.Equal(t, 2, s.requests())
}

func TestAnthropicNeedsAKey(t *testing.T) {
	_, err := anthropic.New(anthropic.Config{})
	require.Error(t, err)
}

func htmlPage(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
	w.Header().Set("Content-Type", "text/html")
	io.WriteString(w, "<html>welcome to nginx</html>")
}

// hardCut sends the start of a stream, then drops the connection in the
// middle of a chunk.
func hardCut(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-test\",\"content\":[],\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n")
	fmt.Fprint(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"par\"}}\n\n")
	w.(http.Flusher).Flush()
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	buf.WriteString("1f\r\nevent: content_block_delta\nda") // a chunk promised longer than sent
	buf.Flush()
	conn.Close()
}

// Warm (provider.Warmer) sends nothing and leaves the caller's request as
// it was, and it may run while a call does (the race detector watches):
// the call gets its answer as it would without it.
func TestWarmSendsNothing(t *testing.T) {
	s, ts := newServer(t, message("ok", "end_turn", 3, 2))
	p := open(t, ts.URL, &sleeps{})
	structured := request()
	withSchema(&structured)
	p.Warm(structured)
	require.Zero(t, s.requests(), "Warm sent a request")
	want := request()
	withSchema(&want)
	require.Equal(t, want, structured, "Warm changed the caller's request")

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Warm(request())
	}()
	resp, err := p.Complete(context.Background(), request())
	<-done
	require.NoError(t, err)
	require.Equal(t, "ok", resp.Text)
	require.Equal(t, 1, s.requests())
}
