package cli

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// What every process pays before main (README "Start-up"): Go runs the
// init of every package a binary links, and compiles every package-level
// regexp there. These tests keep the cuts made.

// TestNoInitRegexps: no package of this module compiles a regexp at package
// init (a package-level var whose value calls regexp.MustCompile or
// Compile outside a function literal): each cost every process linking the
// package 0.01-0.4 ms and tens of KB, whether or not it ran the check.
// Compile on first use instead, as the rest do:
//
//	var idRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^X-[0-9]+$`) })
func TestNoInitRegexps(t *testing.T) {
	fset := token.NewFileSet()
	var found []string
	for _, top := range []string{"../../cmd", "../../internal", "../../pkg"} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				g, ok := decl.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					for _, v := range spec.(*ast.ValueSpec).Values {
						if call := initRegexpCall(v); call != nil {
							found = append(found, fset.Position(call.Pos()).String())
						}
					}
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	require.Empty(t, found, "package-level regexps compiled at init: compile them on first use (sync.OnceValue)")
}

// initRegexpCall returns a call of regexp's compilers in e that runs when e
// is evaluated (not inside a function literal), or nil.
func initRegexpCall(e ast.Expr) *ast.CallExpr {
	var hit *ast.CallExpr
	ast.Inspect(e, func(n ast.Node) bool {
		if hit != nil {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "regexp" && strings.Contains(sel.Sel.Name, "Compile") {
					hit = n
					return false
				}
			}
		}
		return true
	})
	return hit
}

// TestInitRegexpCallSeen: the test above sees what it must, and only that.
func TestInitRegexpCallSeen(t *testing.T) {
	for src, want := range map[string]bool{
		"regexp.MustCompile(`x`)":                                                  true,
		"regexp.MustCompilePOSIX(`x`)":                                             true,
		"must(regexp.Compile(`x`))":                                                true,
		"[]*regexp.Regexp{regexp.MustCompile(`x`)}":                                true,
		"sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`x`) })": false,
		"regexp.QuoteMeta(`x`)":                                                    false,
	} {
		e, err := parser.ParseExpr(src)
		require.NoError(t, err, src)
		require.Equal(t, want, initRegexpCall(e) != nil, src)
	}
}

// unlinked are packages a binary must not link: what its verbs do not
// use, whose init and size every process would pay for ("P/..." is P and
// the packages under it). It holds today's binaries where they are: the
// tools that open no network connection but PostgreSQL's link no net/http
// and no gob (the gateway's and cp-mcp's SDKs bring them); gojq stays out
// of cp-wo and cp-trace (cp-ledger links it for show --where, the gates'
// binaries to compile a config package's router policy as cp-route will,
// and the patched copy's init costs nothing until a query compiles); spec manifests' YAML and
// the install engine stay out of the ledger's, work orders' and trace's
// binaries; cp-wo links no prompt packs and no text/template.
var unlinked = func() map[string][]string {
	const cp = "github.com/control-plane/cp/"
	m := map[string][]string{}
	for _, tool := range []string{"cp-ledger", "cp-install", "cp-pkg", "cp-gate", "cp-auth", "cp-wo", "cp-trace"} {
		m[tool] = []string{"net/http/...", "encoding/gob", "github.com/anthropics/...", "github.com/openai/...", "github.com/modelcontextprotocol/..."}
		if tool == "cp-wo" || tool == "cp-trace" {
			m[tool] = append(m[tool], "github.com/itchyny/gojq")
		}
	}
	for _, tool := range []string{"cp-ledger", "cp-wo", "cp-trace"} {
		m[tool] = append(m[tool], "go.yaml.in/yaml/...", cp+"internal/install", cp+"internal/gate", cp+"internal/stage",
			cp+"internal/bootstrap", cp+"internal/cpv2") // cp-ledger import links internal/cpv2/ledgerimport only
	}
	m["cp-wo"] = append(m["cp-wo"], "text/template/...", cp+"internal/prompt/...", cp+"internal/trace", cp+"internal/config")
	// No binary links the testing packages (testing/fstest's MapFS was
	// once a production schema's file system: schema.CompileDocument).
	for _, tool := range []string{"cp-ledger", "cp-install", "cp-pkg", "cp-gate", "cp-auth", "cp-wo", "cp-trace", "cp-route", "cp-llm", "cp-mcp"} {
		m[tool] = append(m[tool], "testing/...")
	}
	return m
}()

// unlinkedBy reports whether dep is one of the packages u names.
func unlinkedBy(u, dep string) bool {
	if p, ok := strings.CutSuffix(u, "/..."); ok {
		return dep == p || strings.HasPrefix(dep, p+"/")
	}
	return dep == u
}

// TestUnlinked holds the binaries to unlinked (go list -deps ./cmd/...).
func TestUnlinked(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over ./cmd/...")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../../cmd/...").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		deps := strings.Fields(line)
		cmd := path.Base(deps[0])
		for _, dep := range deps[1:] {
			for _, u := range unlinked[cmd] {
				if unlinkedBy(u, dep) {
					t.Errorf("%s links %s (go list -deps ./cmd/%s; why: go mod why -m, or follow its importers)", cmd, dep, cmd)
				}
			}
		}
	}
}

// tagUnlinks are the build tags that leave a library out of every
// binary (README, "Start-up"): each use of it sits behind the tag
// (internal/plane/postgres.go for pgx, internal/llm's provider table for
// the Anthropic SDK); without the tag the binaries do link it.
var tagUnlinks = []struct {
	tag     string
	prefix  []string // packages the tag leaves out ("P/" is P's tree)
	without string   // a package the default build links
}{
	{"nopostgres", []string{"github.com/jackc/", "github.com/control-plane/cp/pkg/ledger/pgstore"}, "github.com/jackc/pgx/v5"},
	{"noanthropic", []string{"github.com/anthropics/"}, "github.com/anthropics/anthropic-sdk-go/v2"},
}

// TestTagsUnlink: built with each tag of tagUnlinks, no binary links what
// the tag leaves out (pgx: its init and size cost every process ~0.4 ms;
// the Anthropic SDK: 1.2-1.9 ms of init in cp-llm, cp-route, cp-mcp).
func TestTagsUnlink(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over ./cmd/...")
	}
	deps := func(tags string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-tags", tags, "../../cmd/...").Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		require.NoError(t, err, "go list -tags %q", tags)
		return strings.Fields(string(out))
	}
	all := deps("")
	for _, tu := range tagUnlinks {
		require.Contains(t, all, tu.without, "the default build links it")
		for _, p := range deps(tu.tag) {
			for _, pre := range tu.prefix {
				if p == pre || strings.HasPrefix(p, pre) && strings.HasSuffix(pre, "/") {
					t.Errorf("-tags %s: a binary links %s (go list -deps -tags %s ./cmd/...; go mod why)", tu.tag, p, tu.tag)
				}
			}
		}
	}
}

// TestPatchedDeps: gojq, pgpassfile and yaml/v3 are the copies in
// third_party (third_party/README.md), not upstream's: gojq's builtin
// tables are built on first use rather than at every process's init
// (0.2-0.35 ms), pgpassfile compiles no unused regexp at init (0.05-0.09
// ms), and yaml compiles its two regexps on first use (~0.1 ms).
func TestPatchedDeps(t *testing.T) {
	for mod, notIn := range map[string]struct{ dir, file, text string }{
		"github.com/itchyny/gojq":     {"gojq", "builtin.go", "func init()"},
		"github.com/jackc/pgpassfile": {"pgpassfile", "pgpass.go", "regexp.MustCompile("},
		"go.yaml.in/yaml/v3":          {"yaml", "resolve.go", "var yamlStyleFloat = regexp"},
	} {
		out, err := exec.Command("go", "list", "-f", "{{.Dir}}", mod).CombinedOutput()
		require.NoError(t, err, "%s", out)
		dir := filepath.ToSlash(strings.TrimSpace(string(out)))
		want := "/third_party/" + notIn.dir
		require.True(t, strings.HasSuffix(dir, want), "%s from %s: go.mod must replace it with .%s", mod, dir, want)
		src, err := os.ReadFile(filepath.Join(dir, notIn.file))
		require.NoError(t, err)
		for _, line := range strings.Split(string(src), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "//") {
				require.NotContains(t, line, notIn.text, "%s: the patch was lost", mod)
			}
		}
	}
}
