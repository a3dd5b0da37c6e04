package mcpcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/jcs"
)

// Server serves the tools of one plane. Its zero value is not usable: make
// one with NewServer.
type Server struct {
	root  string // the served plane's HO3 root, real (links resolved)
	env   cli.Env
	http  bool // tool calls carry their own bearer token, and only that
	osUsr string
	tools []*served
	mcp   *mcp.Server

	mu         sync.Mutex
	guard      *auth.Guard // the stdio server's, made again after auth.Recheck
	guardTime  time.Time
	promptRows map[string]registry.Prompt // the prompts registered, by id
}

// Config is how a server is made.
type Config struct {
	// Root is the served plane's HO3 root: a tool call cannot name another.
	Root string
	// Env is the server's Control Plane environment (its Root is replaced
	// by Root). Over stdio, tool calls run with its token; over HTTP only
	// with their own bearer token, and never with its CONTROL_PLANE_AUTH
	// or signing key.
	Env cli.Env
	// HTTP makes tool calls carry their own token (Authorization: Bearer).
	HTTP bool
	// OSUser is the OS user's name (the subject while a plane has no auth).
	OSUser string
}

// NewServer builds the MCP server of a plane: every served tool, the
// resources and prompts.
func NewServer(cfg Config) (*Server, error) {
	ts, err := tools()
	if err != nil {
		return nil, err
	}
	s := &Server{root: cfg.Root, env: cfg.Env, http: cfg.HTTP, osUsr: cfg.OSUser, tools: ts}
	s.env.Root = cfg.Root
	if s.http {
		// An HTTP client's request never runs with what the server's
		// own process holds: its token, its bypass, its signing key.
		s.env.Token, s.env.AuthOff, s.env.SigningKey = "", false, ""
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "cp-mcp", Version: cli.Version},
		&mcp.ServerOptions{
			// Prompts are served even while the plane has no pack yet: one
			// registered later is listed (prompts/list syncs the registry).
			Capabilities: &mcp.ServerCapabilities{Prompts: &mcp.PromptCapabilities{ListChanged: true}},
			Instructions: "Control Plane tools for the plane at " + cfg.Root +
				": each tool is one verb of a cp-* binary, its input the verb's request, its structured result the binary's envelope; the token the server holds (or, over HTTP, the request's bearer token) is judged by the same firewall."})
	for _, t := range ts {
		s.mcp.AddTool(t.mcpTool(), s.handler(t))
	}
	s.addResources()
	if err := s.addPrompts(); err != nil {
		return nil, err
	}
	return s, nil
}

// MCP returns the SDK server, to run over a transport.
func (s *Server) MCP() *mcp.Server { return s.mcp }

func (t *served) mcpTool() *mcp.Tool {
	a := &mcp.ToolAnnotations{Title: t.tool.Name + " " + t.verb.Name, ReadOnlyHint: t.readOnly, OpenWorldHint: new(false)}
	if !t.readOnly {
		a.DestructiveHint = new(t.destroy)
	}
	return &mcp.Tool{Name: t.name, Description: t.description(), InputSchema: t.schema, Annotations: a}
}

// handler answers tools/call for one tool.
func (s *Server) handler(t *served) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		var hdr http.Header
		if req.Extra != nil {
			hdr = req.Extra.Header
		}
		env, guard, err := s.callEnv(hdr)
		if err != nil {
			return errorResult(start, err), nil // an HTTP request without a token, refused before the MCP layer too
		}
		r, err := s.decodeArgs(t, req.Params.Arguments)
		if err != nil {
			if e := cli.AsError(err); e.Code == CodeOutsidePlane {
				// An escape attempt is evidence, recorded as the
				// firewall's refusals are: AUTHZ_DENIED in HO3.
				tier := t.verb.Tier
				if tier == cli.TierPlane || tier == cli.TierNone {
					tier = "ho3"
				}
				id, seq := s.record(ctx, guard, auth.Access{Root: s.root, Action: t.verb.Action, Tier: tier, Tool: t.tool.Name, Verb: t.verb.Name}, e)
				return errorResult(start, e, id, seq), nil
			}
			return errorResult(start, err), nil
		}
		resp := t.bin.Dispatch(ctx, r, cli.Options{Env: &env, Guard: guard})
		return result(t, resp, start), nil
	}
}

// callEnv is the environment and Guard a tool call runs under: the
// server's over stdio; over HTTP, the request's bearer token alone.
func (s *Server) callEnv(h http.Header) (cli.Env, cli.Guard, error) {
	env := s.env
	if !s.http {
		return env, s.stdioGuard(), nil
	}
	tok, err := Bearer(h)
	if err != nil {
		return env, nil, err
	}
	env.Token = tok
	return env, &tokenOnly{g: auth.NewGuard(auth.Config{Token: tok, OSUser: s.osUsr}), root: s.root}, nil
}

// stdioGuard is the server's Guard: one for the server's token, made again
// once auth.Recheck has passed, so that a changed policy file is read.
func (s *Server) stdioGuard() *auth.Guard {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guard == nil || time.Since(s.guardTime) >= auth.Recheck {
		s.guard = auth.NewGuard(auth.Config{Token: s.env.Token, Off: s.env.AuthOff, OSUser: s.osUsr})
		s.guardTime = time.Now()
	}
	return s.guard
}

// tokenOnly is the Guard of an HTTP request: it admits a verified token
// and nothing else (a plane without auth would admit the server's OS
// user: an HTTP client is not the server's user), always against the
// served plane, for requests that name none too.
type tokenOnly struct {
	g    *auth.Guard
	root string
}

func (t *tokenOnly) Admit(ctx context.Context, root string) (auth.Identity, error) {
	if root == "" {
		root = t.root
	}
	id, err := t.g.Admit(ctx, root)
	if err != nil {
		return id, err
	}
	if id.Auth != auth.AuthToken {
		return auth.Identity{}, cli.Errorf(cli.ExitDenied, auth.CodeMissing,
			"over HTTP a tool call needs a token the plane verifies, and the plane at %s has no auth (cp-auth init has not run)", t.root).
			WithHint("run cp-auth init on the plane, and send Authorization: Bearer <token>")
	}
	return id, nil
}

func (t *tokenOnly) Authorize(ctx context.Context, id auth.Identity, a auth.Access) error {
	if a.Root == "" {
		a.Root = t.root // judged on the served plane, never waved through
	}
	return t.g.Authorize(ctx, id, a)
}

// Bearer returns the token of an HTTP request's Authorization header. It
// must be a token itself: CONTROL_PLANE_TOKEN may name a file, a header
// never does (it would read the server's files). Missing: AUTH_MISSING;
// anything else: AUTH_INVALID.
func Bearer(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return "", cli.Errorf(cli.ExitDenied, auth.CodeMissing, "an HTTP tool call needs Authorization: Bearer <token>; the server's own token is never lent").
			WithHint("mint one with cp-auth token")
	}
	scheme, tok, ok := strings.Cut(v, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", cli.Errorf(cli.ExitDenied, auth.CodeMissing, "the Authorization header is not Bearer <token>")
	}
	if len(tok) > auth.MaxTokenSize || !strings.HasPrefix(tok, "eyJ") || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, `/\ `) {
		return "", cli.Errorf(cli.ExitDenied, auth.CodeInvalid, "the bearer token is not a token (three base64url segments starting eyJ)")
	}
	return tok, nil
}

// decodeArgs decodes a tool call's arguments into the verb's request: one
// JSON object, strictly (duplicate keys refused, numbers exact), not an
// envelope (a pipe's composition is not a tool call's), naming no other
// operation, with its paths confined to the plane.
func (s *Server) decodeArgs(t *served, args json.RawMessage) (cli.Request, error) {
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		args = []byte("{}")
	}
	v, err := jcs.Decode(args)
	if err != nil {
		return nil, cli.Invalidf("INVALID_JSON", "arguments are not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, cli.Invalidf("INVALID_INPUT", "arguments must be a JSON object")
	}
	if st, isEnv := obj["status"].(string); isEnv && st != "" {
		if _, r := obj["result"]; r {
			return nil, cli.Invalidf("INVALID_INPUT", "arguments are an envelope: a tool call takes the request itself (its result)")
		}
		if _, e := obj["error"]; e {
			return nil, cli.Invalidf("INVALID_INPUT", "arguments are an envelope: a tool call takes the request itself")
		}
	}
	if op, ok := obj["operation"]; ok && op != t.verb.Name {
		return nil, cli.Invalidf("INVALID_INPUT", "operation %v: tool %s runs %s %s only", op, t.name, t.tool.Name, t.verb.Name)
	}
	obj["operation"] = t.verb.Name
	req := cli.Request(obj)
	if err := confine(s.root, t.tool.Name+" "+t.verb.Name, req); err != nil {
		return nil, err
	}
	return req, nil
}

// result turns a binary's answer into the tool's: the envelope as
// structured content and as text, isError when it is an error. A raw verb
// (cp-ledger show) prints entries, not an envelope, when it succeeds:
// they are the result's "entries".
func result(t *served, resp cli.Response, start time.Time) *mcp.CallToolResult {
	out := bytes.TrimSpace(resp.Stdout)
	if t.verb.Raw && resp.Exit == cli.ExitOK {
		var b bytes.Buffer
		b.WriteString(`{"status":"ok","result":{"entries":[`)
		n := 0
		for line := range bytes.Lines(out) {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				if n > 0 {
					b.WriteByte(',')
				}
				b.Write(line)
				n++
			}
		}
		fmt.Fprintf(&b, `],"count":%d},"evidence":%s}`, n, evidence(start))
		return envelopeResult(b.Bytes(), false)
	}
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:] // delta lines before the final envelope
	}
	var env struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &env); err != nil || (env.Status != "ok" && env.Status != "error") {
		return errorResult(start, cli.Errorf(cli.ExitInternal, "INTERNAL", "%s %s answered no envelope (exit %d): %s",
			t.tool.Name, t.verb.Name, resp.Exit, strings.TrimSpace(string(resp.Stderr))))
	}
	return envelopeResult(bytes.Clone(out), env.Status == "error" || resp.Exit != cli.ExitOK)
}

func envelopeResult(env []byte, isErr bool) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(env)}},
		StructuredContent: json.RawMessage(env), IsError: isErr}
}

// errorResult is the error envelope of a call refused before it reached a
// binary (its arguments, its paths, its token), with the entry that
// recorded it, if one did (an id, and its seq).
func errorResult(start time.Time, err error, recorded ...any) *mcp.CallToolResult {
	e := cli.AsError(err)
	b, merr := json.Marshal(struct {
		Status string     `json:"status"`
		Error  *cli.Error `json:"error"`
	}{"error", e})
	if merr != nil {
		b = []byte(`{"status":"error","error":{"code":"INTERNAL","message":"encoding an error"}}`)
	}
	b = append(b[:len(b)-1], `,"evidence":`...)
	ev := evidence(start)
	if len(recorded) == 2 && recorded[0] != "" {
		// Keys sorted, as the binaries write them.
		i := strings.Index(ev, `,"timestamp"`)
		ev = fmt.Sprintf(`%s,"ledger_entry_id":%q,"seq":%d%s`, ev[:i], recorded[0], recorded[1], ev[i:])
	}
	b = append(b, ev...)
	b = append(b, '}')
	return envelopeResult(b, true)
}

func evidence(start time.Time) string {
	return `{"duration_ms":` + strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', -1, 64) +
		`,"timestamp":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
}
