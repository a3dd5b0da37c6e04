package prompt

import (
	"errors"
	"strings"
)

// Rendered is a pack rendered with variables: the text to send and the
// evidence the gateway records of it (prompts_used), with the pack's
// limits.
type Rendered struct {
	PromptPackID string   `json:"prompt_pack_id"`
	Version      string   `json:"version"`
	SHA256       string   `json:"sha256"` // the registered pack digest
	Text         string   `json:"text"`
	TextSHA256   string   `json:"text_sha256"` // "sha256:" + hex of Text
	Providers    []string `json:"providers"`
	Models       []string `json:"models"`
	MaxTokens    int64    `json:"max_tokens"`
}

// Render validates vars against the pack's variables schema
// (PROMPT_VARIABLES_INVALID, with every problem in details.problems) and
// renders the template with them (PROMPT_RENDER_FAILED: a variable the
// template uses is missing, which is never rendered as "<no value>", or
// the text would exceed MaxTextBytes). vars nil is the empty object.
// Values are those of encoding/json with UseNumber (json.Number, string,
// bool, nil, []any, map[string]any).
func (p *Pack) Render(vars map[string]any) (*Rendered, error) {
	if vars == nil {
		vars = map[string]any{}
	}
	if probs := p.vars.Validate(vars); len(probs) > 0 {
		e := newErr(CodeVariablesInvalid, p.ID, "", "the variables must match the pack's variables schema (cp-trace explain "+p.ID+" shows the pack)",
			"variables for %s: %s: %s", p.ID, pointer(probs[0].Path), probs[0].Message)
		list := make([]string, 0, len(probs))
		for _, pr := range probs {
			list = append(list, pointer(pr.Path)+": "+pr.Message)
		}
		e.Details = map[string]any{"problems": list}
		return nil, e
	}
	w := &capped{max: MaxTextBytes}
	if err := p.text.Execute(w, vars); err != nil {
		if errors.Is(err, errTooLong) {
			return nil, newErr(CodeRenderFailed, p.ID, "", "", "prompt pack %s renders to more than %d bytes with these variables", p.ID, MaxTextBytes)
		}
		return nil, newErr(CodeRenderFailed, p.ID, "", "declare every variable the template uses as required in pack.json's variables schema, and pass it",
			"prompt pack %s does not render with these variables: %s", p.ID, trimTemplateErr(err))
	}
	text := w.b.String()
	return &Rendered{PromptPackID: p.ID, Version: p.Version, SHA256: p.SHA256, Text: text, TextSHA256: sum([]byte(text)),
		Providers: p.Providers, Models: p.Models, MaxTokens: p.MaxTokens}, nil
}

var errTooLong = errors.New("rendered text too long")

// capped is a writer that refuses to grow past max bytes.
type capped struct {
	b   strings.Builder
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.b.Len()+len(p) > c.max {
		return 0, errTooLong
	}
	return c.b.Write(p)
}

func pointer(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
