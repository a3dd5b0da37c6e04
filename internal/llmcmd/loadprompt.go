package llmcmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/prompt"
)

// loadPromptVerb is cp-llm load-prompt (DESIGN.md §9): it loads a
// registered prompt pack (prompt.Load: re-hashed now against its
// registered digest), renders it with the request's variables (strict:
// schema-validated, a missing variable is an error) and answers the text,
// its hash, the pack's registered hash and its limits. It reads the plane
// and writes nothing: no ledger entry (the gateway's LLM_CALL records what
// a completion used).
//
// Request {prompt_pack_id, variables}; result {prompt_pack_id, version,
// sha256, text, text_sha256, providers, models, max_tokens}. Exit status:
// 1 PROMPT_NOT_FOUND, PROMPT_HASH_MISMATCH, PROMPT_PACK_INVALID; 3
// PROMPT_VARIABLES_INVALID, PROMPT_RENDER_FAILED.
func loadPromptVerb() *cli.Verb {
	return &cli.Verb{Name: "load-prompt", Schema: "cp-llm.load-prompt.request.json", Action: cli.ActionRead, Tier: cli.TierHO3,
		Args: []string{"prompt_pack_id"}, Run: loadPromptRun, Text: loadPromptText,
		Flags: []cli.Flag{
			{Name: "variables", Kind: cli.JSON, Usage: "the template's variables, a JSON object"},
		}}
}

func loadPromptRun(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	id := req.String("prompt_pack_id")
	if id == "" {
		return cli.Outcome{Err: cli.Usagef("load-prompt needs a prompt pack id: cp-llm load-prompt PRM-ID [--variables JSON]")}
	}
	p, err := prompt.Load(root, id)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r, err := p.Render(req.Object("variables"))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: r}
}

// loadPromptText shows a header line (id, version, registered hash, text
// hash) and the rendered text as it is.
func loadPromptText(w io.Writer, result any) error {
	r := result.(*prompt.Rendered)
	if _, err := fmt.Fprintf(w, "# %s %s %s (text %s; providers %s; models %s; max_tokens %d)\n", r.PromptPackID, r.Version, r.SHA256, r.TextSHA256,
		strings.Join(r.Providers, ","), strings.Join(r.Models, ","), r.MaxTokens); err != nil {
		return err
	}
	_, err := io.WriteString(w, r.Text)
	if err == nil && !strings.HasSuffix(r.Text, "\n") {
		_, err = io.WriteString(w, "\n")
	}
	return err
}
