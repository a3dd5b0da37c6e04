// Package llmtest is a local model server for tests and benchmarks: it
// speaks the Anthropic Messages API (POST /v1/messages) and the OpenAI
// Chat Completions API (POST /v1/chat/completions), whole or streamed
// (server-sent events), with the usage fields each reports, error bodies
// in each one's shape, and a mode that holds a call open until the client
// goes away (a hung provider, for a caller killed or cancelled mid-call).
// Only tests and benchmarks import it; nothing here reaches the network.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Server is a local model API. Set its fields before the calls it shapes;
// they are read under its lock.
type Server struct {
	*httptest.Server

	mu sync.Mutex
	// Text is every answer's text (default "hello from the local server").
	text string
	// In and Out are the usage reported (default 7 and 5).
	in, out int64
	// status, when not 0, answers every call with this status and an
	// error body in the API's shape.
	status int
	// hang holds every call open, after the stream's first piece for a
	// streamed call, until the client hangs up.
	hang bool
	// pieces is how many pieces a streamed answer is cut into.
	pieces int
	// delay is the pause between streamed pieces.
	delay time.Duration
	calls int
	// Arrived receives a value when a call arrives (buffered; never blocks).
	Arrived chan struct{}
}

// New starts a server; Close it when done.
func New() *Server {
	s := &Server{text: "hello from the local server", in: 7, out: 5, pieces: 4, Arrived: make(chan struct{}, 1024)}
	s.Server = httptest.NewServer(s)
	return s
}

// Answer sets the answer's text and usage.
func (s *Server) Answer(text string, in, out int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.text, s.in, s.out = text, in, out
}

// Fail makes every call answer status (0: stop failing).
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Hang makes every call hang until its client goes away.
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// Stream sets how many pieces a streamed answer comes in and the pause
// between them (for a whole answer: the pause before it).
func (s *Server) Stream(pieces int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pieces, s.delay = max(pieces, 1), delay
}

// Calls returns how many calls arrived.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// ServeHTTP answers one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	b, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || json.Unmarshal(b, &body) != nil {
		http.Error(w, "not a model API call", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.calls++
	text, in, out, status, hang, pieces, delay := s.text, s.in, s.out, s.status, s.hang, s.pieces, s.delay
	s.mu.Unlock()
	select {
	case s.Arrived <- struct{}{}:
	default:
	}
	anthropic := strings.HasSuffix(r.URL.Path, "/v1/messages")
	if !anthropic && !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		http.Error(w, "unknown path "+r.URL.Path, http.StatusNotFound)
		return
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if anthropic {
			fmt.Fprintf(w, `{"type":"error","error":{"type":"api_error","message":"local server answers %d"}}`, status)
		} else {
			fmt.Fprintf(w, `{"error":{"message":"local server answers %d","type":"server_error","param":null,"code":null}}`, status)
		}
		return
	}
	if hang && !body.Stream {
		<-r.Context().Done()
		return
	}
	if !body.Stream && !pause(r, delay) {
		return
	}
	switch {
	case anthropic && body.Stream:
		s.anthropicStream(w, r, body.Model, split(text, pieces), in, out, hang, delay)
	case anthropic:
		w.Header().Set("Content-Type", "application/json")
		t, _ := json.Marshal(text)
		fmt.Fprintf(w, `{"id":"msg_local","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":%s}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`,
			body.Model, t, in, out)
	case body.Stream:
		s.openaiStream(w, r, body.Model, split(text, pieces), in, out, hang, delay)
	default:
		w.Header().Set("Content-Type", "application/json")
		t, _ := json.Marshal(text)
		fmt.Fprintf(w, `{"id":"chatcmpl-local","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%s,"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			body.Model, t, in, out, in+out)
	}
}

func split(text string, n int) []string {
	if n <= 1 || len(text) < n {
		return []string{text}
	}
	size := (len(text) + n - 1) / n
	var ps []string
	for len(text) > 0 {
		k := min(size, len(text))
		ps = append(ps, text[:k])
		text = text[k:]
	}
	return ps
}

func pause(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-r.Context().Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (s *Server) openaiStream(w http.ResponseWriter, r *http.Request, model string, pieces []string, in, out int64, hang bool, delay time.Duration) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(data string) {
		fmt.Fprintf(w, "data: %s\n\n", data)
		fl.Flush()
	}
	for i, p := range pieces {
		t, _ := json.Marshal(p)
		send(fmt.Sprintf(`{"id":"chatcmpl-local","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]}`, model, t))
		if hang && i == 0 {
			<-r.Context().Done()
			return
		}
		if !pause(r, delay) {
			return
		}
	}
	send(fmt.Sprintf(`{"id":"chatcmpl-local","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, model))
	send(fmt.Sprintf(`{"id":"chatcmpl-local","object":"chat.completion.chunk","created":1,"model":%q,"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, model, in, out, in+out))
	send("[DONE]")
}

func (s *Server) anthropicStream(w http.ResponseWriter, r *http.Request, model string, pieces []string, in, out int64, hang bool, delay time.Duration) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(typ, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
		fl.Flush()
	}
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_local","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1}}}`, model, in))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	for i, p := range pieces {
		t, _ := json.Marshal(p)
		send("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%s}}`, t))
		if hang && i == 0 {
			<-r.Context().Done()
			return
		}
		if !pause(r, delay) {
			return
		}
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, out))
	send("message_stop", `{"type":"message_stop"}`)
}

// ProvidersJSON is a config/providers.json with three providers: the mock
// (the default), "local-openai" (type openai at this server, no key) and
// "local-anthropic" (type anthropic at this server, key in
// LOCAL_ANTHROPIC_KEY), each model priced 3 USD per million input tokens
// and 15 per million output tokens. caps, if not "", is the caps object.
func (s *Server) ProvidersJSON(caps string) string {
	c := ""
	if caps != "" {
		c = ",\n  \"caps\": " + caps
	}
	return fmt.Sprintf(`{
  "default_provider": "mock",
  "providers": [
    {"id": "mock", "type": "mock", "models": [{"id": "mock-1", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0"}]},
    {"id": "local-openai", "type": "openai", "base_url": %q,
     "models": [{"id": "local-model", "input_usd_per_mtok": "3", "output_usd_per_mtok": "15", "max_tokens": 4096}]},
    {"id": "local-anthropic", "type": "anthropic", "base_url": %q, "api_key_env": "LOCAL_ANTHROPIC_KEY",
     "models": [{"id": "claude-local", "input_usd_per_mtok": "3", "output_usd_per_mtok": "15"}]}
  ]%s
}
`, s.URL, s.URL, c)
}
