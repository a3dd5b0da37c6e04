package openai_test

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

	"github.com/control-plane/cp/internal/llm/openai"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/testenv"
)

// TestMain keeps anything an SDK might write out of the home directory.
func TestMain(m *testing.M) { testenv.Main(m) }

const key = "sk-openai-test-0123456789"

type step = func(w http.ResponseWriter, r *http.Request, body map[string]any)

// server is a local Chat Completions API at /v1/chat/completions.
type server struct {
	t       *testing.T
	mu      sync.Mutex
	steps   []step
	bodies  []map[string]any
	headers []http.Header
	key     string
}

func newServer(t *testing.T, steps ...step) (*server, *httptest.Server) {
	s := &server{t: t, steps: steps, key: key}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	ok := r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") &&
		(s.key == "" && auth == "" || auth == "Bearer "+s.key)
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil || !ok {
		s.t.Errorf("not a Chat Completions request: %s %s auth=%q: %s", r.Method, r.URL.Path, auth, b)
		w.WriteHeader(404)
		return
	}
	for _, f := range []string{"model", "messages"} {
		if _, ok := body[f]; !ok {
			s.t.Errorf("request without %s: %s", f, b)
		}
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.headers = append(s.headers, r.Header.Clone())
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

// completion answers with content, a JSON value: a string, or the array
// of parts some servers send.
func completion(content any, finish string, in, out int) step {
	return func(w http.ResponseWriter, _ *http.Request, body map[string]any) {
		c, _ := json.Marshal(content)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"%s-2026","choices":[{"index":0,"message":{"role":"assistant","content":%s,"refusal":null},"logprobs":null,"finish_reason":%q}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			body["model"], c, finish, in, out, in+out)
	}
}

func noChoices(w http.ResponseWriter, _ *http.Request, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"%s","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":0,"total_tokens":4}}`, body["model"])
}

func apiError(status int, body string, header ...string) step {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func oaiError(msg, typ string) string {
	return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":null}}`, msg, typ)
}

// chunks streams the pieces as chat.completion.chunk events, then a chunk
// with the finish reason, then (usage) a last chunk with empty choices and
// the usage, then [DONE]. cut >= 0 stops after that many pieces; wait
// makes it wait there for the client to hang up; midError sends an error
// object there instead.
func chunks(pieces []string, in, out int, cut int, wait bool, midError string) step {
	return func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		send := func(data string) {
			fmt.Fprintf(w, "data: %s\n\n", data)
			fl.Flush()
		}
		model := body["model"]
		send(fmt.Sprintf(`{"id":"chatcmpl-3","object":"chat.completion.chunk","created":1,"model":"%s-2026","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`, model))
		for i, p := range pieces {
			if i == cut {
				if midError != "" {
					send(midError)
				}
				if wait {
					select {
					case <-r.Context().Done():
					case <-time.After(10 * time.Second):
						panic("the client never hung up")
					}
				}
				return
			}
			send(fmt.Sprintf(`{"id":"chatcmpl-3","object":"chat.completion.chunk","created":1,"model":"%s-2026","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, model, p))
		}
		send(fmt.Sprintf(`{"id":"chatcmpl-3","object":"chat.completion.chunk","created":1,"model":"%s-2026","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, model))
		send(fmt.Sprintf(`{"id":"chatcmpl-3","object":"chat.completion.chunk","created":1,"model":"%s-2026","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, model, in, out, in+out))
		send("[DONE]")
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

func open(t *testing.T, base, k string, sl *sleeps) *openai.Provider {
	// The process's own variables must not reach the client.
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	t.Setenv("OPENAI_API_KEY", "sk-from-the-environment")
	t.Setenv("OPENAI_ORG_ID", "org-from-the-environment")
	p, err := openai.New(openai.Config{BaseURL: base, APIKey: k,
		Retry: provider.Retry{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second, Sleep: sl.sleep}})
	require.NoError(t, err)
	return p
}

func request() provider.Request {
	return provider.Request{Model: "gpt-test", System: "be brief", Prompt: "say hi", MaxTokens: 64}
}

func withSchema(r *provider.Request) {
	r.Schema = map[string]any{"type": "object", "required": []any{"answer"}, "additionalProperties": false,
		"properties": map[string]any{"answer": map[string]any{"type": "string"}}}
}

func TestOpenAI(t *testing.T) {
	type result struct {
		text     string
		code     string
		status   int
		attempts int
		usage    provider.Usage
		sleeps   []time.Duration
		finish   string
	}
	for _, tc := range []struct {
		name   string
		stream bool
		noKey  bool
		base   string // the base URL's path; "" means "/v1"
		req    func(*provider.Request)
		steps  []step
		stop   int
		want   result
		check  func(t *testing.T, s *server, err error)
	}{
		{name: "plain", steps: []step{completion("hi there", "stop", 12, 3)},
			want: result{text: "hi there", attempts: 1, usage: provider.Usage{InputTokens: 12, OutputTokens: 3}, finish: "stop"},
			check: func(t *testing.T, s *server, _ error) {
				b := s.bodies[0]
				require.Equal(t, "gpt-test", b["model"])
				require.EqualValues(t, 64, b["max_tokens"], "a compatible server gets max_tokens")
				require.NotContains(t, b, "max_completion_tokens")
				require.Equal(t, []any{map[string]any{"role": "system", "content": "be brief"}, map[string]any{"role": "user", "content": "say hi"}}, b["messages"])
				require.Empty(t, s.headers[0].Get("OpenAI-Organization"), "no OPENAI_ORG_ID from the environment")
			}},
		{name: "streaming: usage only in the last chunk", stream: true, steps: []step{chunks([]string{"hi", " there"}, 12, 5, -1, false, "")},
			want: result{text: "hi there", attempts: 1, usage: provider.Usage{InputTokens: 12, OutputTokens: 5}, finish: "stop"},
			check: func(t *testing.T, s *server, _ error) {
				require.Equal(t, true, s.bodies[0]["stream"])
				require.Equal(t, map[string]any{"include_usage": true}, s.bodies[0]["stream_options"])
			}},
		{name: "structured", req: withSchema, steps: []step{completion(`{"answer":"yes"}`, "stop", 20, 6)},
			want: result{text: `{"answer":"yes"}`, attempts: 1, usage: provider.Usage{InputTokens: 20, OutputTokens: 6}, finish: "stop"},
			check: func(t *testing.T, s *server, _ error) {
				rf := s.bodies[0]["response_format"].(map[string]any)
				require.Equal(t, "json_schema", rf["type"])
				js := rf["json_schema"].(map[string]any)
				require.Equal(t, "output", js["name"])
				require.Equal(t, "object", js["schema"].(map[string]any)["type"])
			}},
		{name: "structured, not matching", req: withSchema, steps: []step{completion(`{"answer":42}`, "stop", 20, 6)},
			want: result{code: provider.CodeOutputInvalid, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 20, OutputTokens: 6}},
			check: func(t *testing.T, _ *server, err error) {
				require.Equal(t, []string{"/answer: want string, got number"}, problems(err))
			}},
		{name: "structured, not JSON", req: withSchema, steps: []step{completion("Sure! Here it is", "stop", 20, 6)},
			want: result{code: provider.CodeOutputInvalid, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 20, OutputTokens: 6}}},
		{name: "content as an array of parts", steps: []step{completion([]any{map[string]any{"type": "text", "text": "hi "}, map[string]any{"type": "text", "text": "there"}}, "stop", 3, 2)},
			want: result{text: "hi there", attempts: 1, usage: provider.Usage{InputTokens: 3, OutputTokens: 2}, finish: "stop"}},
		{name: "an empty choices array is an empty answer", steps: []step{noChoices},
			want: result{attempts: 1, usage: provider.Usage{InputTokens: 4}}},
		{name: "a base URL without /v1", base: "-", steps: []step{completion("ok", "stop", 1, 1)},
			want: result{text: "ok", attempts: 1, usage: provider.Usage{InputTokens: 1, OutputTokens: 1}, finish: "stop"}},
		{name: "no key: no Authorization header", noKey: true, steps: []step{completion("ok", "stop", 1, 1)},
			want: result{text: "ok", attempts: 1, usage: provider.Usage{InputTokens: 1, OutputTokens: 1}, finish: "stop"}},
		{name: "error: 400 is not retried", steps: []step{apiError(400, oaiError("max_tokens is too large", "invalid_request_error"))},
			want: result{code: provider.CodeProviderError, status: 400, attempts: 1},
			check: func(t *testing.T, _ *server, err error) {
				require.ErrorContains(t, err, "invalid_request_error: max_tokens is too large")
			}},
		{name: "error: a plain-string error body (Ollama)", steps: []step{apiError(404, `{"error":"model \"gpt-test\" not found, try pulling it first"}`)},
			want:  result{code: provider.CodeProviderError, status: 404, attempts: 1},
			check: func(t *testing.T, _ *server, err error) { require.ErrorContains(t, err, "try pulling it first") }},
		{name: "error: a body that is not JSON", steps: []step{apiError(502, "<html>bad gateway</html>"), apiError(502, "<html>bad gateway</html>"), apiError(502, "")},
			want: result{code: provider.CodeProviderError, status: 502, attempts: 3, sleeps: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}}},
		{name: "retry: 429 with retry-after-ms, then success", steps: []step{apiError(429, oaiError("Rate limit reached", "requests"), "Retry-After-Ms", "1500"), completion("ok", "stop", 5, 1)},
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{1500 * time.Millisecond}, finish: "stop"}},
		{name: "retry: 429 with retry-after, then 500, then success", steps: []step{apiError(429, oaiError("slow", "requests"), "Retry-After", "1"), apiError(500, oaiError("boom", "server_error")), completion("ok", "stop", 5, 1)},
			want: result{text: "ok", attempts: 3, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{time.Second, 200 * time.Millisecond}, finish: "stop"}},
		{name: "error inside the stream before any text: retried", stream: true,
			steps: []step{chunks([]string{"x"}, 0, 0, 0, false, `{"error":{"message":"upstream overloaded","type":"server_error"}}`), chunks([]string{"ok"}, 5, 1, -1, false, "")},
			want:  result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{100 * time.Millisecond}, finish: "stop"}},
		{name: "error inside the stream after text: final", stream: true,
			steps: []step{chunks([]string{"a", "b", "c"}, 0, 0, 2, false, `{"error":{"message":"context length exceeded","type":"invalid_request_error"}}`)},
			want:  result{code: provider.CodeProviderError, status: 400, attempts: 1},
			check: func(t *testing.T, _ *server, err error) { require.ErrorContains(t, err, "context length exceeded") }},
		{name: "streaming: a 503 before the stream, retried", stream: true, steps: []step{apiError(503, oaiError("busy", "server_error")), chunks([]string{"ok"}, 5, 1, -1, false, "")},
			want: result{text: "ok", attempts: 2, usage: provider.Usage{InputTokens: 5, OutputTokens: 1}, sleeps: []time.Duration{100 * time.Millisecond}, finish: "stop"}},
		{name: "stream cut after text: not retried", stream: true, steps: []step{chunks([]string{"a", "b", "c"}, 9, 3, 2, false, "")},
			want: result{code: provider.CodeProviderError, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 542, OutputTokens: 2, Estimated: true}},
			check: func(t *testing.T, _ *server, err error) {
				require.ErrorContains(t, err, "without a finish reason")
				require.Equal(t, "ab", err.(*provider.Error).Text)
			}},
		{name: "cancel mid-stream: the connection closed", stream: true, stop: 1, steps: []step{chunks([]string{"one", "two"}, 9, 3, 1, true, "")},
			// usage comes only in the last chunk: a stream stopped before it is
			// charged the bound (542 = 512 + 16 + 14 bytes of text), and one
			// token a byte received
			want: result{code: provider.CodeCancelled, status: 200, attempts: 1, usage: provider.Usage{InputTokens: 542, OutputTokens: 3, Estimated: true}}},
		{name: "a 200 that is not the API (a web page) is not retried", steps: []step{htmlPage},
			want: result{code: provider.CodeProviderError, status: 200, attempts: 1}},
		{name: "a stream without usage (include_usage ignored) is charged the bound", stream: true, steps: []step{noUsage},
			want: result{text: "ok", attempts: 1, usage: provider.Usage{InputTokens: 542, OutputTokens: 2, Estimated: true}, finish: "stop"}},
		{name: "a key echoed by the server stays out of the error", steps: []step{apiError(401, oaiError("Incorrect API key provided: "+key, "invalid_request_error"))},
			want: result{code: provider.CodeProviderError, status: 401, attempts: 1},
			check: func(t *testing.T, _ *server, err error) {
				require.NotContains(t, err.Error(), key)
				b, _ := json.Marshal(err.(*provider.Error).ErrorDetails())
				require.NotContains(t, string(b), key)
			}},
		{name: "temperature is sent", req: func(r *provider.Request) { t := 0.25; r.Temperature = &t }, steps: []step{completion("ok", "stop", 1, 1)},
			want:  result{text: "ok", attempts: 1, usage: provider.Usage{InputTokens: 1, OutputTokens: 1}, finish: "stop"},
			check: func(t *testing.T, s *server, _ error) { require.EqualValues(t, 0.25, s.bodies[0]["temperature"]) }},
		{name: "a schema keyword the validator does not support", req: func(r *provider.Request) {
			r.Schema = map[string]any{"type": "object", "patternProperties": map[string]any{"^x": map[string]any{}}}
		}, want: result{code: provider.CodeSchemaUnsupported}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newServer(t, tc.steps...)
			k := key
			if tc.noKey {
				k, s.key = "", ""
			}
			base := ts.URL + "/v1"
			if tc.base == "-" {
				base = ts.URL
			}
			sl := &sleeps{}
			p := open(t, base, k, sl)
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
			} else {
				got.text, got.attempts, got.usage = resp.Text, len(resp.Attempts), resp.Usage
				got.finish = strings.Join(resp.FinishReasons, ",")
				require.Equal(t, "openai", resp.Provider)
				require.True(t, strings.HasPrefix(resp.Model, "gpt-test"), "the model as the server answered: %q", resp.Model)
				if tc.stream {
					require.Equal(t, resp.Text, streamed.String())
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

func problems(err error) []string {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe.Problems
	}
	return nil
}

// OpenAI's own API gets max_completion_tokens (its newer models refuse
// max_tokens); the request never leaves this machine: the transport
// answers for api.openai.com.
func TestOpenAIOfficialMaxCompletionTokens(t *testing.T) {
	var body map[string]any
	rt := roundTrip(func(r *http.Request) (*http.Response, error) {
		require.Equal(t, "api.openai.com", r.URL.Host)
		require.Equal(t, "/v1/chat/completions", r.URL.Path)
		b, _ := io.ReadAll(r.Body)
		require.NoError(t, json.Unmarshal(b, &body))
		rec := httptest.NewRecorder()
		completion("ok", "stop", 1, 1)(rec, r, body)
		return rec.Result(), nil
	})
	p, err := openai.New(openai.Config{APIKey: key, HTTPClient: &http.Client{Transport: rt}})
	require.NoError(t, err)
	_, err = p.Complete(context.Background(), request())
	require.NoError(t, err)
	require.EqualValues(t, 64, body["max_completion_tokens"])
	require.NotContains(t, body, "max_tokens")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                openai.DefaultBaseURL,
		"http://localhost:11434":          "http://localhost:11434/v1/",
		"http://localhost:11434/":         "http://localhost:11434/v1/",
		"http://localhost:8080/v1":        "http://localhost:8080/v1/",
		"https://openrouter.ai/api/v1":    "https://openrouter.ai/api/v1/",
		"https://example.test/openai/v1/": "https://example.test/openai/v1/",
	} {
		got, err := openai.BaseURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"localhost:11434", "ftp://x/v1", "http://", "::"} {
		_, err := openai.BaseURL(bad)
		require.Error(t, err, bad)
	}
}

func htmlPage(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
	w.Header().Set("Content-Type", "text/html")
	io.WriteString(w, "<html>welcome to nginx</html>")
}

func noUsage(w http.ResponseWriter, _ *http.Request, _ map[string]any) {
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-test","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}`+"\n\n")
	io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-test","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
	io.WriteString(w, "data: [DONE]\n\n")
}

// Warm (provider.Warmer) sends nothing and leaves the caller's request as
// it was, and it may run while a call does (the race detector watches):
// the call gets its answer as it would without it.
func TestWarmSendsNothing(t *testing.T) {
	s, ts := newServer(t, completion("ok", "stop", 3, 2))
	p := open(t, ts.URL+"/v1", key, &sleeps{})
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
