package mcpcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/tracecmd"
)

// Resource URIs.
const (
	// CheckpointURI + tier is a tier's latest signed checkpoint (C2SP
	// signed note text).
	CheckpointURI = "cp://checkpoint/"
	// AgentContextURI is cp-trace agent-context's result for the caller.
	AgentContextURI = "cp://agent-context"
)

// addResources registers the checkpoints of the three tiers and the
// agent context. Each read is judged by the firewall as a read of its tier,
// under the same token as a tool call, and a refusal recorded.
func (s *Server) addResources() {
	for _, tier := range []string{"ho3", "ho2", "ho1"} {
		s.mcp.AddResource(&mcp.Resource{URI: CheckpointURI + tier, Name: "checkpoint-" + tier, MIMEType: "text/plain",
			Description: "the latest signed checkpoint of the " + strings.ToUpper(tier) + " ledger (a C2SP signed note)"},
			func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return s.readCheckpoint(ctx, extra(req.Extra), tier)
			})
	}
	s.mcp.AddResource(&mcp.Resource{URI: AgentContextURI, Name: "agent-context", MIMEType: "application/json",
		Description: "what the caller may do here and under which law: cp-trace agent-context's envelope"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			env, guard, err := s.callEnv(extra(req.Extra))
			if err != nil {
				return nil, err
			}
			resp := tracecmd.Dispatch(ctx, cli.Request{"operation": "agent-context"}, cli.Options{Env: &env, Guard: guard})
			out := bytes.TrimSpace(resp.Stdout)
			if resp.Exit != cli.ExitOK {
				return nil, fmt.Errorf("agent-context: %s", out)
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: AgentContextURI, MIMEType: "application/json", Text: string(out)}}}, nil
		})
}

func extra(e *mcp.RequestExtra) http.Header {
	if e == nil {
		return nil
	}
	return e.Header
}

// readCheckpoint reads a tier's stored checkpoint, once the caller may
// read that tier.
func (s *Server) readCheckpoint(ctx context.Context, h http.Header, tier string) (*mcp.ReadResourceResult, error) {
	if err := s.admitRead(ctx, h, tier, "checkpoint"); err != nil {
		return nil, err
	}
	dir, err := plane.Dir(s.root, tier)
	if err != nil {
		return nil, err
	}
	st, _, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	b, err := st.ReadCheckpoint()
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, mcp.ResourceNotFoundError(CheckpointURI + tier)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: CheckpointURI + tier, MIMEType: "text/plain", Text: string(b)}}}, nil
}

// admitRead judges a read of tier by the caller (cp-mcp VERB, action
// read), as the request path judges a verb's, and records a refusal in
// HO3's ledger (AUTHZ_DENIED).
func (s *Server) admitRead(ctx context.Context, h http.Header, tier, verb string) error {
	_, guard, err := s.callEnv(h)
	if err != nil {
		return err
	}
	a := auth.Access{Root: s.root, Action: auth.ActionRead, Tier: tier, Tool: "cp-mcp", Verb: verb}
	id, err := guard.Admit(ctx, s.root)
	if err == nil {
		a.Subject = id.Subject
		err = guard.Authorize(ctx, id, a)
	}
	if err == nil {
		return nil
	}
	refusal := cli.AsError(err)
	if refusal.Code == "" || refusal.Code == "INTERNAL" {
		refusal = cli.Errorf(cli.ExitDenied, auth.CodeDenied, "%v", err)
	}
	s.record(ctx, guard, a, refusal)
	return refusal
}

// record appends a refusal to HO3's ledger as the request path does
// (AUTHZ_DENIED: subject, role, action, tier, code, reason), the subject
// being who guard admits (unauthenticated when no one), and returns the
// entry's id and seq ("" when it could not be written: the refusal stands).
func (s *Server) record(ctx context.Context, guard cli.Guard, a auth.Access, refusal *cli.Error) (string, int64) {
	var id auth.Identity
	if guard != nil {
		var err error
		if id, err = guard.Admit(ctx, s.root); err != nil {
			id = auth.Identity{}
		}
	}
	a.Subject = id.Subject
	if a.Subject == "" {
		a.Subject = "unauthenticated"
	}
	rid, seq, err := cli.RecordDenial(ctx, &cli.Call{Identity: id}, a, refusal)
	if err != nil {
		return "", 0
	}
	return rid, seq
}

// coded prefixes err's message with its code (PROMPT_HASH_MISMATCH: ...),
// as the envelopes of the tools name theirs: a JSON-RPC error carries only
// a message.
func coded(err error) error {
	var c interface{ Code() string }
	if errors.As(err, &c) && !strings.HasPrefix(err.Error(), c.Code()+": ") {
		return fmt.Errorf("%s: %w", c.Code(), err)
	}
	return err
}

// prompts returns the active rows of the plane's prompt registry.
func (s *Server) prompts() ([]registry.Prompt, error) {
	rows, err := registry.Read(s.root, registry.Prompts)
	if err != nil {
		return nil, err
	}
	var out []registry.Prompt
	for _, r := range rows {
		p, err := registry.ParsePrompt(r)
		if err != nil {
			return nil, err
		}
		if p.Status == registry.StatusActive {
			out = append(out, p)
		}
	}
	return out, nil
}

// addPrompts registers the plane's active prompt packs as MCP prompts, and
// registers them again whenever a client lists them (a pack installed
// since is listed, one retired is not). Fetching one reads the registry
// row again and re-hashes the file.
func (s *Server) addPrompts() error {
	if err := s.syncPrompts(); err != nil {
		return err
	}
	s.mcp.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "prompts/list" {
				// The registry is the plane's: listing it is a read of
				// HO3, judged like one (over HTTP, by the bearer token).
				if err := s.admitRead(ctx, extra(req.GetExtra()), "ho3", "prompts"); err != nil {
					return nil, err
				}
				if err := s.syncPrompts(); err != nil {
					return nil, err
				}
			}
			return next(ctx, method, req)
		}
	})
	return nil
}

// syncPrompts brings the registered MCP prompts in line with the registry,
// touching only what changed: each change notifies the clients
// (prompts/list_changed), and a client that lists again on that
// notification must not be sent another.
func (s *Server) syncPrompts() error {
	ps, err := s.prompts()
	if err != nil {
		return fmt.Errorf("prompt registry: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := map[string]registry.Prompt{}
	for _, p := range ps {
		now[p.ID] = p
	}
	var gone []string
	for id := range s.promptRows {
		if _, ok := now[id]; !ok {
			gone = append(gone, id)
			delete(s.promptRows, id)
		}
	}
	if len(gone) > 0 {
		s.mcp.RemovePrompts(gone...)
	}
	if s.promptRows == nil {
		s.promptRows = map[string]registry.Prompt{}
	}
	for _, p := range ps {
		if old, ok := s.promptRows[p.ID]; ok && old == p {
			continue
		}
		s.promptRows[p.ID] = p
		s.mcp.AddPrompt(&mcp.Prompt{Name: p.ID, Title: p.ID + " " + p.Version,
			Description: fmt.Sprintf("registered prompt pack %s %s (package %s, %s); arguments fill its template", p.ID, p.Version, p.PackageID, p.SHA256)},
			s.getPrompt)
	}
	return nil
}

// getPrompt answers prompts/get: the registered pack loaded as the
// gateway loads it (internal/prompt: its files re-hashed against the
// registered digest, PROMPT_HASH_MISMATCH; the altered text never served)
// and rendered strictly with the arguments (PROMPT_VARIABLES_INVALID,
// PROMPT_RENDER_FAILED), as one user message.
func (s *Server) getPrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	if err := s.admitRead(ctx, extra(req.Extra), "ho3", "prompt"); err != nil {
		return nil, err
	}
	p, err := prompt.Load(s.root, req.Params.Name)
	if err != nil {
		return nil, coded(err)
	}
	vars := make(map[string]any, len(req.Params.Arguments))
	for k, v := range req.Params.Arguments {
		vars[k] = v
	}
	r, err := p.Render(vars)
	if err != nil {
		return nil, coded(err)
	}
	meta, _ := json.Marshal(map[string]string{"prompt_pack_id": r.PromptPackID, "version": r.Version, "sha256": r.SHA256, "text_sha256": r.TextSHA256})
	return &mcp.GetPromptResult{Description: string(meta),
		Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: r.Text}}}}, nil
}
