package cli

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/framework"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/internal/spec"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
)

// module is the module path, to resolve constants named through an import.
const module = "github.com/control-plane/cp"

// reserved are codes in classes that no code emits yet: DESIGN.md names
// them for binaries to come (the LLM gateway) or for input
// checks kept in the vocabulary. (The LLM codes left it when cp-llm
// landed, issue 15.)
var reserved = []string{"UNSAFE_NUMBER", "UNAVAILABLE",
	// Raised by internal/mcpcmd (cp-mcp serve), which the emitter scan
	// does not root: cp-mcp has no cli.Verb (its one verb serves a session).
	"MCP_PATH_OUTSIDE_PLANE"}

// twoClasses are codes that the request path or a command package raises
// with cli.Errorf in a class other than the table's, on purpose.
var twoClasses = map[string][]int{
	// cp-ledger append refuses a metadata._tier that is not the ledger's
	// (1, the table's); Root refuses a lower tier's tier.json that claims
	// another tier: the file lies, invalid input (3).
	"TIER_MISMATCH": {ExitInvalid},
}

// emitted is where a code or a kind is raised: file:line.
type emitted map[string][]string

// TestClassesComplete reads every non-test Go file of the module and fails
// when a code raised anywhere is missing from classes, when a kind is not
// one that kinds knows, when cli.Errorf (or an *Error literal) gives a code
// a class the table does not (twoClasses aside), or when the table holds a
// code that nothing raises (reserved aside).
//
// A code is raised where a string constant (a literal, or a constant
// named in this module) is: an argument to a parameter named code (of
// cli.Errorf and Invalidf, of the libraries' constructors, of a gate's
// fail and warn); the value of a code or Code field in a composite
// literal; assigned to code or to a .Code field; returned by a Code()
// method; or a constant named Code or Code*. A gate's warn counts: its
// code never sets an exit status, but it is one a user reads. A kind is the value of a kind
// field or a constant named kind*.
func TestClassesComplete(t *testing.T) {
	codes, kindsUsed, explicit := scanModule(t, filepath.Join("..", ".."))
	require.NotEmpty(t, codes["LEDGER_INVALID"], "the scan found the ledger's errors")
	require.NotEmpty(t, codes["ASSET_NOT_IN_SPEC"], "the scan found the gates' findings")
	require.NotEmpty(t, kindsUsed[KindRefusal], "the scan found cp-install's refusals")

	for _, code := range slices.Sorted(maps.Keys(codes)) {
		if _, ok := classes[code]; !ok {
			t.Errorf("code %s (raised at %s) is missing from classes in errors.go", code, strings.Join(codes[code], ", "))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kindsUsed)) {
		if _, ok := kinds[k]; !ok {
			t.Errorf("kind %q (at %s) is not one errors.go knows", k, strings.Join(kindsUsed[k], ", "))
		}
	}
	for _, code := range slices.Sorted(maps.Keys(explicit)) {
		if _, ok := classes[code]; !ok {
			continue // said above
		}
		for _, at := range explicit[code] {
			class, where, _ := strings.Cut(at, " ")
			n, _ := strconv.Atoi(class)
			if n == classes[code] || slices.Contains(twoClasses[code], n) {
				continue
			}
			t.Errorf("%s: %s raised with exit %d; the table says %d (one table: fix the call, or the table, or list it in twoClasses)", where, code, n, classes[code])
		}
	}
	for code := range classes {
		if len(codes[code]) == 0 && !slices.Contains(reserved, code) {
			t.Errorf("classes holds %s, which nothing raises (a code renamed? else list it in reserved)", code)
		}
	}
}

var codeRE = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// codeParam returns the index of the parameter named code in ft, or -1.
func codeParam(ft *ast.FuncType) int {
	i := 0
	for _, field := range ft.Params.List {
		for _, n := range field.Names {
			if n.Name == "code" {
				return i
			}
			i++
		}
	}
	return -1
}

// exitConst are the names of the exit classes.
var exitConst = map[string]int{"ExitOK": ExitOK, "ExitDenied": ExitDenied, "ExitUsage": ExitUsage,
	"ExitInvalid": ExitInvalid, "ExitUnavailable": ExitUnavailable, "ExitInternal": ExitInternal}

type goFile struct {
	pkg  string // import path
	file *ast.File
	name string
}

// scanModule returns the codes and kinds raised under root, each with where,
// and the codes raised with an explicit class ("N file:line").
func scanModule(t *testing.T, root string) (codes, kindsUsed, explicit emitted) {
	t.Helper()
	fset := token.NewFileSet()
	var files []goFile
	consts := map[string]map[string]string{} // import path -> constant -> string value
	raisers := map[string]map[string]int{}   // import path -> function, method or func literal -> index of its code parameter
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".")) {
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
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		files = append(files, goFile{pkg, f, p})
		if consts[pkg] == nil {
			consts[pkg], raisers[pkg] = map[string]string{}, map[string]int{}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if i := codeParam(n.Type); i >= 0 {
					raisers[pkg][n.Name.Name] = i
				}
			case *ast.AssignStmt: // fail := func(code, path, format string, ...)
				for i, rhs := range n.Rhs {
					id, ok := n.Lhs[i].(*ast.Ident)
					if lit, isLit := rhs.(*ast.FuncLit); ok && isLit && codeParam(lit.Type) >= 0 {
						raisers[pkg][id.Name] = codeParam(lit.Type)
					}
				}
			}
			return true
		})
		for _, decl := range f.Decls {
			if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[pkg][n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(files), 50, "the scan read the module")

	codes, kindsUsed, explicit = emitted{}, emitted{}, emitted{}
	for _, gf := range files {
		imports := map[string]string{} // name in the file -> import path
		for _, im := range gf.file.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			name := path[strings.LastIndexByte(path, '/')+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = path
		}
		value := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				if e.Kind == token.STRING {
					s, err := strconv.Unquote(e.Value)
					return s, err == nil
				}
			case *ast.Ident:
				s, ok := consts[gf.pkg][e.Name]
				return s, ok
			case *ast.SelectorExpr:
				if x, ok := e.X.(*ast.Ident); ok {
					s, ok := consts[imports[x.Name]][e.Sel.Name]
					return s, ok
				}
			}
			return "", false
		}
		at := func(n ast.Node) string {
			p := fset.Position(n.Pos())
			rel, _ := filepath.Rel(root, p.Filename)
			return rel + ":" + strconv.Itoa(p.Line)
		}
		code := func(e ast.Expr) string {
			if s, ok := value(e); ok && codeRE.MatchString(s) {
				codes[s] = append(codes[s], at(e))
				return s
			}
			return ""
		}
		class := func(e ast.Expr) (int, bool) {
			name := ""
			switch e := e.(type) {
			case *ast.Ident:
				name = e.Name
			case *ast.SelectorExpr:
				if x, ok := e.X.(*ast.Ident); ok && imports[x.Name] == module+"/internal/cli" {
					name = e.Sel.Name
				}
			}
			n, ok := exitConst[name]
			return n, ok
		}
		ast.Inspect(gf.file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr: // a constant passed to a parameter named code
				pkg, name := gf.pkg, ""
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
					if x, ok := fn.X.(*ast.Ident); ok && imports[x.Name] != "" {
						pkg = imports[x.Name] // else a method of this package's
					}
				}
				i, ok := raisers[pkg][name]
				if !ok || i >= len(n.Args) {
					break
				}
				c := code(n.Args[i])
				switch {
				case c == "" || pkg != module+"/internal/cli":
				case name == "Errorf":
					if x, ok := class(n.Args[0]); ok {
						explicit[c] = append(explicit[c], strconv.Itoa(x)+" "+at(n))
					}
				case name == "Invalidf":
					explicit[c] = append(explicit[c], strconv.Itoa(ExitInvalid)+" "+at(n))
				}
			case *ast.CompositeLit:
				var c string
				x, hasExit := -1, false
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch key, _ := kv.Key.(*ast.Ident); {
					case key == nil:
					case key.Name == "code" || key.Name == "Code":
						c = code(kv.Value)
					case key.Name == "kind" || key.Name == "Kind":
						if s, ok := value(kv.Value); ok {
							kindsUsed[s] = append(kindsUsed[s], at(kv))
						}
					case key.Name == "Exit":
						x, hasExit = class(kv.Value)
					}
				}
				if c != "" && hasExit {
					explicit[c] = append(explicit[c], strconv.Itoa(x)+" "+at(n))
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if i >= len(n.Rhs) {
						break
					}
					switch l := lhs.(type) {
					case *ast.Ident:
						if l.Name == "code" {
							code(n.Rhs[i])
						}
					case *ast.SelectorExpr:
						if l.Sel.Name == "Code" {
							code(n.Rhs[i])
						}
					}
				}
			case *ast.FuncDecl:
				if n.Recv != nil && n.Name.Name == "Code" && n.Body != nil {
					ast.Inspect(n.Body, func(m ast.Node) bool {
						if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
							code(r.Results[0])
						}
						return true
					})
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i >= len(n.Values) {
						continue
					}
					switch {
					case strings.HasPrefix(id.Name, "Code"):
						code(n.Values[i])
					case strings.HasPrefix(id.Name, "kind") || strings.HasPrefix(id.Name, "Kind"):
						if s, ok := value(n.Values[i]); ok {
							kindsUsed[s] = append(kindsUsed[s], at(id))
						}
					}
				}
			}
			return true
		})
	}
	return codes, kindsUsed, explicit
}

func TestExitFor(t *testing.T) {
	require.Equal(t, ExitDenied, ExitFor("SOMETHING_NEW"), "unknown codes fail closed, never 0")
	for code, class := range classes {
		require.NotEqual(t, ExitOK, class, "%s: an error is never success", code)
	}
}

// coded is a library error as the request path sees one: a code, data, and
// perhaps a kind; never an exit status.
type coded struct{ code, kind string }

func (e *coded) Error() string { return e.code }
func (e *coded) Code() string  { return e.code }

type kinded struct{ coded }

func (e *kinded) Kind() string { return e.kind }

func TestAsErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		exit int
	}{
		{"the code's class", &coded{code: "MANIFEST_INVALID"}, ExitInvalid},
		{"an unknown code fails closed", &coded{code: "SOMETHING_NEW"}, ExitDenied},
		{"a refusal, whatever its code", &kinded{coded{"MANIFEST_INVALID", KindRefusal}}, ExitDenied},
		{"a refusal by a gate on a busy plane", &kinded{coded{"JOURNAL_PENDING", KindRefusal}}, ExitDenied},
		{"an argument", &kinded{coded{"TRUSTED_KEYS_INVALID", KindArgument}}, ExitUsage},
		{"a broken invariant", &kinded{coded{"KERNEL_MISMATCH", KindBroken}}, ExitInternal},
		{"an unknown kind: the code decides", &kinded{coded{"NOT_REGULAR", "other"}}, ExitInvalid},
		{"no kind", &kinded{coded{"NOT_REGULAR", ""}}, ExitInvalid},
		{"wrapped", errors.Join(errors.New("context"), &coded{code: "LOCK_TIMEOUT"}), ExitUnavailable},
		{"a refusal that stopped a judgement", Unevaluated(&coded{code: "REGISTRY_INVALID"}, "h"), ExitUnavailable},
		{"other classes keep theirs when unevaluated", Unevaluated(&coded{code: "MANIFEST_INVALID"}, "h"), ExitInvalid},
		{"an *Error that stopped a judgement", Unevaluated(Errorf(ExitDenied, "LEDGER_INVALID", "x"), "h"), ExitUnavailable},
		{"a plain error", errors.New("x"), ExitInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.exit, AsError(tc.err).Exit)
		})
	}
	e := AsError(Unevaluated(&coded{code: "REGISTRY_INVALID"}, "nothing passed"))
	require.Equal(t, "REGISTRY_INVALID", e.Code, "the mark keeps the code")
	require.Equal(t, "nothing passed", e.Hint)
	require.Empty(t, AsError(Unevaluated(&coded{code: "IO_ERROR"}, "nothing passed")).Hint, "the hint goes with the class it explains")
}

// TestLibraryClasses holds the classes that library errors had when each
// carried its own exit number (and its own tests asserted it): they come
// from the table now.
func TestLibraryClasses(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	write(trust.File, "{")
	write("tier.json", "{")
	write(registry.Dir+"/"+registry.Specs.File, "not,a,registry\n")
	zeros := "sha256:" + strings.Repeat("0", 64)

	_, manifestErr := manifest.Parse([]byte(`{}`))
	_, signatureErr := pkgsig.Verify(nil, pkgsig.Statement{PackageID: "PKG-A-001", Version: "1.0.0", ManifestHash: zeros, ArchiveHash: zeros}, nil)
	_, trustErr := trust.Load(dir)
	_, keyErr := keys.Verifier(filepath.Join(dir, "no-such.pub"))
	journalErr := journal.Apply(dir, []journal.Change{{Path: "../x", Data: []byte("x"), Mode: 0o644}}, journal.Options{})
	_, specErr := spec.Parse([]byte("{"), false)
	_, frameworkErr := framework.Parse(nil)
	_, regularErr := regfile.Open(dir)
	_, tierErr := plane.ReadTier(dir)
	_, versionErr := snapshot.Load(dir, "VER-nope")
	_, registryErr := registry.Read(dir, registry.Specs)

	for _, tc := range []struct {
		err  error
		code string
		exit int
	}{
		{manifestErr, "MANIFEST_INVALID", ExitInvalid},
		{signatureErr, "SIGNATURE_MISSING", ExitDenied},
		{trustErr, "TRUSTED_KEYS_INVALID", ExitInvalid},
		{keyErr, "KEY_INVALID", ExitUsage},
		{journalErr, "INVALID_INPUT", ExitInvalid},
		{specErr, "SPEC_INVALID", ExitInvalid},
		{frameworkErr, "FRAMEWORK_INVALID", ExitInvalid},
		{regularErr, "NOT_REGULAR", ExitInvalid},
		{tierErr, "TIER_INVALID", ExitInvalid},
		{versionErr, "VERSION_NOT_FOUND", ExitUsage},
		{registryErr, "REGISTRY_INVALID", ExitDenied},
	} {
		t.Run(tc.code, func(t *testing.T) {
			require.Error(t, tc.err)
			e := AsError(tc.err)
			require.Equal(t, tc.code, e.Code, "%v", tc.err)
			require.Equal(t, tc.exit, e.Exit, "%v", tc.err)
		})
	}
}

// TestPassthroughClass: an upstream error envelope exits with its code's
// class from the same table (DESIGN.md §3); one without a code fails closed.
func TestPassthroughClass(t *testing.T) {
	for code, exit := range map[string]int{"JOURNAL_PENDING": ExitUnavailable, "SPEC_INVALID": ExitInvalid, "GATE_FAILED": ExitDenied, "SOMETHING_NEW": ExitDenied} {
		in, err := parseInput([]byte(`{"status":"error","error":{"code":"` + code + `","message":"m"}}`))
		require.NoError(t, err)
		require.NotNil(t, in.passthrough)
		require.Equal(t, exit, in.passthrough.Exit, code)
	}
	in, err := parseInput([]byte(`{"status":"error","error":{}}`))
	require.NoError(t, err)
	require.Equal(t, "UPSTREAM_ERROR", in.passthrough.Code)
	require.Equal(t, ExitDenied, in.passthrough.Exit)
}
