package llm_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(pgtest.M(m)) }

// providers is a config/providers.json as an operator writes it; doc
// validates it the way the loader does.
const providers = `{
  "default_provider": "claude",
  "providers": [
    {"id": "claude", "type": "anthropic", "base_url": "%s",
     "models": [{"id": "claude-test", "input_usd_per_mtok": "3", "output_usd_per_mtok": "15", "max_tokens": 1024}]},
    {"id": "local", "type": "openai", "base_url": "%s", "api_key_env": "LOCAL_LLM_KEY",
     "models": [{"id": "llama3", "input_usd_per_mtok": "0.15", "output_usd_per_mtok": "0.6"}]},
    {"id": "openai", "type": "openai",
     "models": [{"id": "gpt-test", "input_usd_per_mtok": "2.5", "output_usd_per_mtok": "10"}]},
    {"id": "mock", "type": "mock", "models": [{"id": "mock-1", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0"}]}
  ]
}`

func doc(t *testing.T, anthropicURL, openaiURL string) *config.ProvidersDoc {
	b := []byte(fmt.Sprintf(providers, anthropicURL, openaiURL))
	require.NoError(t, config.Validate(config.ProvidersPath, b))
	var d config.ProvidersDoc
	require.NoError(t, jsonUnmarshal(b, &d))
	return &d
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolve(t *testing.T) {
	d := doc(t, "http://127.0.0.1:1", "http://127.0.0.1:2")
	tg, err := llm.Resolve(d, "", "")
	require.NoError(t, err)
	require.Equal(t, "claude", tg.Provider.ID, "the default provider")
	require.Equal(t, "claude-test", tg.Model.ID, "its first model")

	tg, err = llm.Resolve(d, "local", "llama3")
	require.NoError(t, err)
	require.Equal(t, "0.15", tg.Rates.Input.String())

	for _, tc := range []struct{ provider, model, code string }{
		{"gemini", "", llm.CodeProviderUnknown},
		{"local", "llama4", llm.CodeModelUnknown},
		{"openai", "claude-test", llm.CodeModelUnknown},
	} {
		_, err := llm.Resolve(d, tc.provider, tc.model)
		var e *llm.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, tc.code, e.Code())
		require.NotEmpty(t, e.ErrorHint())
	}
}

// MaxCost is the budget's reservation: max_tokens at the output price and
// the input bound at the input price, rounded up once.
func TestMaxCostAndCost(t *testing.T) {
	d := doc(t, "http://127.0.0.1:1", "http://127.0.0.1:2")
	tg, err := llm.Resolve(d, "claude", "")
	require.NoError(t, err)
	req := provider.Request{Model: "claude-test", Prompt: "hello", MaxTokens: 1000}
	max, err := tg.MaxCost(&req)
	require.NoError(t, err)
	in := provider.InputTokenBound(&req) // 512 + 16 + 5
	require.Equal(t, int64(533), in)
	require.Equal(t, in*3+1000*15, max, "micro-USD: $3 and $15 a million tokens are 3 and 15 micro-USD a token")
	cost, err := tg.Cost(provider.Usage{InputTokens: 10, OutputTokens: 20})
	require.NoError(t, err)
	require.Equal(t, int64(330), cost)
	require.LessOrEqual(t, cost, max)

	require.NoError(t, tg.Check(&req))
	req.MaxTokens = 2048
	var pe *provider.Error
	require.ErrorAs(t, tg.Check(&req), &pe, "max_tokens above the model's")
	require.Equal(t, provider.CodeRequestInvalid, pe.Code())
}

func TestOpen(t *testing.T) {
	var anthropicCalls, openaiCalls int
	anth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		anthropicCalls++
		require.Equal(t, "Bearer sk-ant-op", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"m","type":"message","role":"assistant","model":"claude-test","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`)
	}))
	defer anth.Close()
	oai := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openaiCalls++
		require.Equal(t, "/v1/chat/completions", r.URL.Path)
		require.Equal(t, "Bearer local-key", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"llama3","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`)
	}))
	defer oai.Close()
	d := doc(t, anth.URL, oai.URL)
	getenv := env(map[string]string{"ANTHROPIC_API_KEY": "sk-ant-op", "LOCAL_LLM_KEY": "local-key"})
	ctx := context.Background()

	for _, tc := range []struct {
		provider, model, text string
	}{{"claude", "claude-test", "hi"}, {"local", "llama3", "hello"}, {"mock", "mock-1", ""}} {
		tg, err := llm.Resolve(d, tc.provider, "")
		require.NoError(t, err)
		p, err := llm.Open(tg, llm.Options{Getenv: getenv})
		require.NoError(t, err)
		resp, err := p.Complete(ctx, provider.Request{Model: tg.Model.ID, Prompt: "hi", MaxTokens: 10})
		require.NoError(t, err, tc.provider)
		require.Equal(t, tg.Provider.Type, resp.Provider)
		if tc.text != "" {
			require.Equal(t, tc.text, resp.Text)
		}
	}
	require.Equal(t, 1, anthropicCalls)
	require.Equal(t, 1, openaiCalls)

	// Keys missing: fail closed, naming the variable and never falling
	// back to another provider.
	for _, id := range []string{"claude", "openai"} {
		tg, err := llm.Resolve(d, id, "")
		require.NoError(t, err)
		_, err = llm.Open(tg, llm.Options{Getenv: env(nil)})
		var e *llm.Error
		require.ErrorAs(t, err, &e, id)
		require.Equal(t, llm.CodeKeyMissing, e.Code())
		require.Equal(t, llm.KeyEnv(tg.Provider), e.ErrorDetails()["key_env"])
	}
	// A local OpenAI-compatible server needs no key.
	tg, err := llm.Resolve(d, "local", "")
	require.NoError(t, err)
	_, err = llm.Open(tg, llm.Options{Getenv: env(nil)})
	require.NoError(t, err)

	require.Equal(t, "ANTHROPIC_API_KEY", llm.KeyEnv(config.Provider{Type: "anthropic"}))
	require.Equal(t, "OPENAI_API_KEY", llm.KeyEnv(config.Provider{Type: "openai"}))
	require.Equal(t, "MY_KEY", llm.KeyEnv(config.Provider{Type: "openai", APIKeyEnv: "MY_KEY"}))
	require.Equal(t, "", llm.KeyEnv(config.Provider{Type: "mock"}))
}

// The built-in configuration (no config package) is the mock provider,
// which needs no key and no network.
func TestDefaultIsMock(t *testing.T) {
	var d config.ProvidersDoc
	require.NoError(t, jsonUnmarshal(config.DefaultProviders, &d))
	tg, err := llm.Resolve(&d, "", "")
	require.NoError(t, err)
	p, err := llm.Open(tg, llm.Options{})
	require.NoError(t, err)
	require.Equal(t, "mock", p.Name())
	max, err := tg.MaxCost(&provider.Request{Model: "mock-1", Prompt: "x", MaxTokens: 100})
	require.NoError(t, err)
	require.Zero(t, max)
}

// TestSDKsOutOfBinaries holds the provider SDKs (and the packages over
// them) out of every binary but the gateway's: today's tools must not pay
// their init cost or size. Only internal/llm/price, which config parses
// prices with, is everyone's.
func TestSDKsOutOfBinaries(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../../cmd/...").CombinedOutput()
	require.NoError(t, err, "%s", out)
	gateway := map[string]bool{"cp-llm": true, "cp-route": true, "cp-mcp": true}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.NotEmpty(t, lines)
	for _, line := range lines {
		deps := strings.Fields(line)
		cmd := path.Base(deps[0])
		if gateway[cmd] {
			continue
		}
		for _, dep := range deps[1:] {
			if strings.Contains(dep, "anthropic-sdk-go") || strings.Contains(dep, "openai-go") ||
				(strings.HasPrefix(dep, "github.com/control-plane/cp/internal/llm") && dep != "github.com/control-plane/cp/internal/llm/price") {
				t.Errorf("%s links %s", cmd, dep)
			}
		}
	}
}
