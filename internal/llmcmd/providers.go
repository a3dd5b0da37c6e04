package llmcmd

import (
	"context"
	"fmt"
	"io"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm"
)

// Providers is list-providers' answer.
type Providers struct {
	Source          Source         `json:"source"`
	DefaultProvider string         `json:"default_provider"`
	Providers       []ProviderView `json:"providers"`
	Caps            *config.Caps   `json:"caps,omitempty"`
}

// Source is where the configuration in force comes from.
type Source struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	PackageID string `json:"package_id,omitempty"`
	Default   bool   `json:"default"`
}

// ProviderView is one provider as list-providers shows it: never its key,
// only whether the variable that holds it is set in this process.
type ProviderView struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	BaseURL     string         `json:"base_url,omitempty"`
	KeyEnv      string         `json:"key_env"`
	KeySet      bool           `json:"key_set"`
	KeyRequired bool           `json:"key_required"`
	Default     bool           `json:"default"`
	CapMicroUSD *int64         `json:"cap_micro_usd,omitempty"`
	Models      []config.Model `json:"models"`
}

func listProviders(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	doc, src, err := config.Providers(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	out := &Providers{Source: Source{Path: src.Path, SHA256: src.SHA256, PackageID: src.Package, Default: src.Default()},
		DefaultProvider: doc.DefaultProvider, Caps: doc.Caps, Providers: []ProviderView{}}
	for _, p := range doc.Providers {
		env := llm.KeyEnv(p)
		v := ProviderView{ID: p.ID, Type: p.Type, BaseURL: p.BaseURL, KeyEnv: env, KeySet: env != "" && getenv(env) != "",
			KeyRequired: env != "" && !(p.Type == "openai" && p.BaseURL != ""), Default: p.ID == doc.DefaultProvider, Models: p.Models}
		if doc.Caps != nil {
			if cap, ok := doc.Caps.Providers[p.ID]; ok {
				v.CapMicroUSD = &cap
			}
		}
		out.Providers = append(out.Providers, v)
	}
	return cli.Outcome{Result: out}
}

func providersText(w io.Writer, result any) error {
	r := result.(*Providers)
	from := "built-in default"
	if !r.Source.Default {
		from = "package " + r.Source.PackageID
	}
	fmt.Fprintf(w, "%s (%s, %s)\n", r.Source.Path, from, r.Source.SHA256)
	for _, p := range r.Providers {
		mark := " "
		if p.Default {
			mark = "*"
		}
		key := "no key"
		switch {
		case p.KeyEnv != "" && p.KeySet:
			key = p.KeyEnv + " set"
		case p.KeyEnv != "" && p.KeyRequired:
			key = p.KeyEnv + " NOT set"
		case p.KeyEnv != "":
			key = p.KeyEnv + " not set (optional)"
		}
		fmt.Fprintf(w, "%s %s (%s) %s %s\n", mark, p.ID, p.Type, p.BaseURL, key)
		for _, m := range p.Models {
			fmt.Fprintf(w, "    %s  in %s  out %s USD/Mtok\n", m.ID, m.InputUSD, m.OutputUSD)
		}
	}
	return nil
}
