package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file derives, from the Go sources alone (go/parser and go/ast, no
// type checker), where each error code is emitted and which emitters (a
// binary's verb, a gate, the request path) reach those places. The
// catalogue test (catalog_test.go) checks every row's EmittedBy against it.
//
// What it reads: every non-test .go file of the module outside testdata,
// vendor and dot directories.
//
// Sites. A code is emitted at a site inside a function where a string
// constant (a literal, or a constant of this module named directly or
// through an import) that looks like a code (codeRE) is:
//   - an argument to a parameter named code (cli.Errorf, Invalidf, the
//     libraries' refuse/newError helpers, a gate's fail and warn: a
//     warning's code is one a user reads, too);
//   - the value of a code or Code field in a composite literal;
//   - assigned to a variable named code or to a .Code field;
//   - the construction of a type whose Code() method returns constants
//     (spec.Error is SPEC_INVALID wherever one is built): a composite
//     literal of that type is a site of each code its Code() returns.
//
// A code in one of those positions that is built at run time (a
// concatenation, fmt.Sprintf, a call into strings) fails the catalogue
// test: only a constant code can have a row. Passing a code along (a
// parameter named code, a .Code field, a Code() call) is neither a site
// nor a built code.
//
// Constant declarations (workorder.CodeNotFound = "WO_NOT_FOUND") and the
// Code() methods themselves are declarations, not sites: the site is where
// the constant is used or the type is built. TestClassesComplete counts them
// as places a code is raised; this derivation does not, so that a code
// declared and never used is "emitted nowhere".
//
// Reach. Each function declaration (and each package-level variable, for
// the func literals in its initializer) is a node; a func literal belongs
// to the declaration it is written in. A node references: a function or
// variable of its own package named by an identifier, a function or
// variable of an imported module package named pkg.Name, and, for any
// other selector x.M, every method named M that methodScope says it may
// name: an unexported one of its own package; an exported one of its own
// package, of the module packages its file imports, and of the packages
// its package depends on that import one of those (methods are matched by
// name: an interface call reaches the implementations it can reach). Not followed: error-protocol methods (Code, Kind,
// Error, ErrorDetails, ErrorHint, ErrorResult, Unwrap: a Code() call reads
// a code, it does not emit one); the standard interfaces' methods (Write,
// Read, Close, String, ...: see ioMethods); and a selector on a value of a
// package outside the module (os.Stdout.Write).
//
// Emitters and their roots:
//   - "cp-x verb": the Run, Batch and Scope functions of a cli.Verb literal
//     in the package that also holds cp-x's cli.Tool literal (verb names
//     with a hyphen are written with a space: "cp-install trust add");
//   - a gate ("G0A", "G2", "VERSION", "RECEIPTS", ...): every function of
//     internal/gate that calls newResult with that name;
//   - "request path": cli.Main, cli.RunWith and cli.Dispatch, the code every
//     verb of every binary runs before and after its own.
//
// The reach approximates the call graph both ways: methods matched by
// name can reach too far, and an implementation in a package the caller
// does not import (pgstore behind ledger.Store) is not followed. The test
// logs each site nothing reaches, so what the reach misses is in plain
// sight, and a code all of whose sites are missed fails.

// site is one place a code is emitted.
type site struct {
	at   string // file:line, relative to the module root
	node string // the function (or package variable) it is written in
}

// emitScan is what derive returns.
type emitScan struct {
	sites    map[string][]site   // code -> where it is emitted
	reach    map[string][]string // emitter -> nodes it reaches (sorted)
	reaches  map[string]map[string]bool
	emitters []string // every emitter, sorted
	verbs    map[string][]string
	built    []string // codes built at run time: "file:line expression"
	edges    map[string]map[string]bool
	roots    map[string][]string
}

// derivedEmitters returns, for a code, the emitters that reach at least
// one of its sites.
func (s *emitScan) derivedEmitters(code string) []string {
	var out []string
	for _, e := range s.emitters {
		for _, st := range s.sites[code] {
			if s.reaches[e][st.node] {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// reachedBy returns the emitters that reach a site.
func (s *emitScan) reachedBy(st site) []string {
	var out []string
	for _, e := range s.emitters {
		if s.reaches[e][st.node] {
			out = append(out, e)
		}
	}
	return out
}

// notFollowed are the error-protocol methods: calling them reads an error,
// it emits nothing.
var notFollowed = map[string]bool{"Code": true, "Kind": true, "Error": true, "ErrorDetails": true,
	"ErrorHint": true, "ErrorResult": true, "Unwrap": true}

// ioMethods are the methods of the standard library's interfaces (io,
// fmt, sort, flag): a call of one is almost always on a standard value (a
// file, a buffer, a writer), and following it by name to this module's
// implementations (an archive writer's Write) would have every byte
// written reach the archive's errors.
var ioMethods = map[string]bool{"Write": true, "Read": true, "Close": true, "WriteString": true,
	"WriteByte": true, "WriteRune": true, "ReadByte": true, "String": true, "Len": true, "Less": true,
	"Swap": true, "Flush": true, "ReadFrom": true, "WriteTo": true, "Seek": true, "Set": true}

// methodScope are the packages whose exported methods a selector x.M in
// sf may name: its own, the module packages the file imports, and the
// packages the caller's package depends on that import one of those (a
// driver implementing an interface the file names: pgstore behind
// ledger.Store). An unexported method is always one of the file's own
// package: no other package can declare or call it.
func methodScope(sf srcFile, pkgs map[string]*srcPkg, closure map[string][]string) []string {
	scope := []string{sf.pkg}
	imported := slices.Collect(maps.Values(sf.imports))
	for _, p := range closure[sf.pkg] {
		if slices.Contains(imported, p) {
			scope = append(scope, p)
			continue
		}
		if q := pkgs[p]; q != nil {
			for _, imp := range sf.imports {
				if q.imports[imp] {
					scope = append(scope, p)
					break
				}
			}
		}
	}
	return scope
}

// rootIdent is the identifier an expression x.y.z starts from, or "".
func rootIdent(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name
		case *ast.SelectorExpr:
			e = x.X
		case *ast.CallExpr:
			e = x.Fun
		case *ast.IndexExpr:
			e = x.X
		case *ast.StarExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		default:
			return ""
		}
	}
}

type srcFile struct {
	pkg     string
	file    *ast.File
	imports map[string]string // name in the file -> import path (module packages only)
	others  map[string]bool   // names of the other packages the file imports
}

type srcPkg struct {
	funcs     map[string]bool     // top-level functions
	vars      map[string]bool     // package-level variables
	methods   map[string][]string // method name -> node keys
	consts    map[string]string   // string constants
	raisers   map[string]int      // function, method or func var -> index of its code parameter
	typeCodes map[string][]string // type -> the constant codes its Code() returns
	imports   map[string]bool     // module packages imported by any file
}

// derive scans the module under root.
func derive(t *testing.T, root string) *emitScan {
	t.Helper()
	fset := token.NewFileSet()
	var files []srcFile
	pkgs := map[string]*srcPkg{}
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
		sf := srcFile{pkg: pkg, file: f, imports: map[string]string{}, others: map[string]bool{}}
		sp := pkgs[pkg]
		if sp == nil {
			sp = &srcPkg{funcs: map[string]bool{}, vars: map[string]bool{}, methods: map[string][]string{},
				consts: map[string]string{}, raisers: map[string]int{}, typeCodes: map[string][]string{}, imports: map[string]bool{}}
			pkgs[pkg] = sp
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			name := path[strings.LastIndexByte(path, '/')+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			if path != module && !strings.HasPrefix(path, module+"/") {
				sf.others[name] = true
				continue
			}
			sf.imports[name] = path
			sp.imports[path] = true
		}
		files = append(files, sf)
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					sp.funcs[d.Name.Name] = true
				} else {
					sp.methods[d.Name.Name] = append(sp.methods[d.Name.Name], nodeKey(pkg, d))
				}
				if i := codeParam(d.Type); i >= 0 {
					sp.raisers[d.Name.Name] = i
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for i, n := range vs.Names {
						if d.Tok == token.VAR {
							sp.vars[n.Name] = true
						}
						if i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING && d.Tok == token.CONST {
							sp.consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool { // fail := func(code, path, format string, ...)
			if a, ok := n.(*ast.AssignStmt); ok {
				for i, rhs := range a.Rhs {
					id, ok := a.Lhs[i].(*ast.Ident)
					if lit, isLit := rhs.(*ast.FuncLit); ok && isLit && codeParam(lit.Type) >= 0 {
						sp.raisers[id.Name] = codeParam(lit.Type)
					}
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)

	// The types whose Code() returns constants (a second pass: the
	// constants of every file are known now).
	for _, sf := range files {
		for _, decl := range sf.file.Decls {
			d, ok := decl.(*ast.FuncDecl)
			if !ok || d.Recv == nil || d.Name.Name != "Code" || d.Body == nil {
				continue
			}
			typ := recvType(d)
			ast.Inspect(d.Body, func(m ast.Node) bool {
				if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
					if s, ok := constValue(pkgs, sf, r.Results[0]); ok && codeRE.MatchString(s) {
						pkgs[sf.pkg].typeCodes[typ] = append(pkgs[sf.pkg].typeCodes[typ], s)
					}
				}
				return true
			})
		}
	}

	// closure: the module packages a package imports, directly or not.
	closure := map[string][]string{}
	for pkg := range pkgs {
		seen := map[string]bool{}
		stack := []string{pkg}
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if pkgs[p] == nil {
				continue
			}
			for q := range pkgs[p].imports {
				if !seen[q] {
					seen[q] = true
					stack = append(stack, q)
				}
			}
		}
		closure[pkg] = slices.Sorted(maps.Keys(seen))
	}

	scopes := map[*ast.File][]string{} // methodScope of a file, for exported methods
	scan := &emitScan{sites: map[string][]site{}, verbs: map[string][]string{}}
	edges := map[string]map[string]bool{}
	roots := map[string][]string{} // emitter -> root nodes
	toolOf := map[string]string{}  // package -> the tool its cli.Tool literal names
	type verbLit struct {
		file srcFile
		lit  *ast.CompositeLit
	}
	var verbLits []verbLit

	at := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		rel, _ := filepath.Rel(root, p.Filename)
		return filepath.ToSlash(rel) + ":" + strconv.Itoa(p.Line)
	}

	// walk collects the references and sites of one node's body.
	walk := func(sf srcFile, key string, body ast.Node) {
		sp := pkgs[sf.pkg]
		out := edges[key]
		if out == nil {
			out = map[string]bool{}
			edges[key] = out
		}
		emit := func(e ast.Expr) {
			if s, ok := constValue(pkgs, sf, e); ok && codeRE.MatchString(s) {
				scan.sites[s] = append(scan.sites[s], site{at: at(e), node: key})
			} else if built(sf, e) {
				scan.built = append(scan.built, at(e)+" "+types.ExprString(e))
			}
		}
		ast.Inspect(body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				if sp.funcs[n.Name] {
					out[sf.pkg+"."+n.Name] = true
				} else if sp.vars[n.Name] {
					out[sf.pkg+".var."+n.Name] = true
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && sf.imports[x.Name] != "" {
					path := sf.imports[x.Name]
					if q := pkgs[path]; q != nil {
						if q.funcs[n.Sel.Name] {
							out[path+"."+n.Sel.Name] = true
						} else if q.vars[n.Sel.Name] {
							out[path+".var."+n.Sel.Name] = true
						}
					}
					return false
				}
				if !notFollowed[n.Sel.Name] && !ioMethods[n.Sel.Name] && !sf.others[rootIdent(n.X)] {
					scope := []string{sf.pkg}
					if ast.IsExported(n.Sel.Name) {
						if scopes[sf.file] == nil {
							scopes[sf.file] = methodScope(sf, pkgs, closure)
						}
						scope = scopes[sf.file]
					}
					for _, p := range scope {
						if q := pkgs[p]; q != nil {
							for _, m := range q.methods[n.Sel.Name] {
								out[m] = true
							}
						}
					}
				}
			case *ast.CallExpr:
				pkg, name := sf.pkg, ""
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
					if x, ok := fn.X.(*ast.Ident); ok && sf.imports[x.Name] != "" {
						pkg = sf.imports[x.Name]
					}
				}
				if q := pkgs[pkg]; q != nil {
					if i, ok := q.raisers[name]; ok && i < len(n.Args) {
						emit(n.Args[i])
					}
				}
			case *ast.CompositeLit:
				if tpkg, tname := litType(sf, n.Type); tname != "" && pkgs[tpkg] != nil {
					for _, c := range pkgs[tpkg].typeCodes[tname] {
						scan.sites[c] = append(scan.sites[c], site{at: at(n), node: key})
					}
				}
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && (k.Name == "code" || k.Name == "Code") {
							emit(kv.Value)
						}
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if i >= len(n.Rhs) {
						break
					}
					switch l := lhs.(type) {
					case *ast.Ident:
						if l.Name == "code" {
							emit(n.Rhs[i])
						}
					case *ast.SelectorExpr:
						if l.Sel.Name == "Code" {
							emit(n.Rhs[i])
						}
					}
				}
			}
			return true
		})
	}

	for _, sf := range files {
		for _, decl := range sf.file.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Body == nil {
					continue
				}
				key := nodeKey(sf.pkg, d)
				walk(sf, key, d.Body)
				if sf.pkg == module+"/internal/gate" {
					ast.Inspect(d.Body, func(n ast.Node) bool {
						if c, ok := n.(*ast.CallExpr); ok {
							if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "newResult" && len(c.Args) == 1 {
								if lit, ok := c.Args[0].(*ast.BasicLit); ok {
									g, _ := strconv.Unquote(lit.Value)
									roots[g] = append(roots[g], key)
								}
							}
						}
						return true
					})
				}
				if sf.pkg == module+"/internal/cli" && d.Recv == nil && (d.Name.Name == "Main" || d.Name.Name == "RunWith" || d.Name.Name == "Dispatch") {
					roots["request path"] = append(roots["request path"], key)
				}
			case *ast.GenDecl:
				if d.Tok != token.VAR {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							walk(sf, sf.pkg+".var."+n.Name, vs.Values[i])
						}
					}
				}
			}
		}
		// cli.Tool and cli.Verb literals: the binaries and their verbs.
		ast.Inspect(sf.file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			tpkg, tname := litType(sf, lit.Type)
			if tpkg == module+"/internal/cli" && tname == "Tool" {
				for _, el := range lit.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, _ := kv.Key.(*ast.Ident); k != nil && k.Name == "Name" {
						toolOf[sf.pkg], _ = constValue(pkgs, sf, kv.Value)
					}
				}
			}
			if tpkg == module+"/internal/cli" && tname == "Verb" {
				verbLits = append(verbLits, verbLit{sf, lit})
			}
			if arr, ok := lit.Type.(*ast.ArrayType); ok {
				elt := arr.Elt
				if st, ok := elt.(*ast.StarExpr); ok {
					elt = st.X
				}
				if p, name := litType(sf, elt); p == module+"/internal/cli" && name == "Verb" {
					for _, el := range lit.Elts {
						if v, ok := el.(*ast.CompositeLit); ok {
							verbLits = append(verbLits, verbLit{sf, v})
						} else if u, ok := el.(*ast.UnaryExpr); ok {
							if v, ok := u.X.(*ast.CompositeLit); ok {
								verbLits = append(verbLits, verbLit{sf, v})
							}
						}
					}
				}
			}
			return true
		})
	}
	for _, vl := range verbLits {
		sf := vl.file
		var name string
		var fns []ast.Expr
		for _, el := range vl.lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			switch k, _ := kv.Key.(*ast.Ident); {
			case k == nil:
			case k.Name == "Name":
				name, _ = constValue(pkgs, sf, kv.Value)
			case k.Name == "Run" || k.Name == "Batch" || k.Name == "Scope":
				fns = append(fns, kv.Value)
			}
		}
		tool := toolOf[sf.pkg]
		require.NotEmpty(t, tool, "the cli.Tool literal of %s (for verb %q)", sf.pkg, name)
		require.NotEmpty(t, name, "a verb of %s without a constant Name", tool)
		emitter := tool + " " + strings.ReplaceAll(name, "-", " ")
		scan.verbs[tool] = append(scan.verbs[tool], emitter)
		key := sf.pkg + ".verb." + name
		for _, fn := range fns {
			walk(sf, key, fn) // an identifier, a call of a factory, or a func literal
		}
		roots[emitter] = append(roots[emitter], key)
	}

	scan.edges, scan.roots = edges, roots
	scan.reach, scan.reaches = map[string][]string{}, map[string]map[string]bool{}
	for e, rs := range roots {
		seen := map[string]bool{}
		stack := slices.Clone(rs)
		for _, r := range rs {
			seen[r] = true
		}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for m := range edges[n] {
				if !seen[m] {
					seen[m] = true
					stack = append(stack, m)
				}
			}
		}
		scan.reaches[e] = seen
		scan.reach[e] = slices.Sorted(maps.Keys(seen))
		scan.emitters = append(scan.emitters, e)
	}
	slices.Sort(scan.emitters)
	return scan
}

// built reports whether e, in a code's position, builds a code at run
// time ("WO_" + x, fmt.Sprintf, strings.ToUpper): such a code could be
// none the catalogue holds. Passing a code along (a parameter named code,
// a .Code field, a Code() call) is not building one.
func built(sf srcFile, e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BinaryExpr:
		return true
	case *ast.ParenExpr:
		return built(sf, e.X)
	case *ast.CallExpr:
		if s, ok := e.Fun.(*ast.SelectorExpr); ok {
			x, ok := s.X.(*ast.Ident)
			return ok && x.Name != "" && (sf.imports[x.Name] != "" || stdlib[x.Name])
		}
	}
	return false
}

// stdlib are the standard packages a code could be built with.
var stdlib = map[string]bool{"fmt": true, "strings": true, "strconv": true}

// nodeKey names a function or method declaration: pkg.F or pkg.T.M.
func nodeKey(pkg string, d *ast.FuncDecl) string {
	if d.Recv == nil {
		return pkg + "." + d.Name.Name
	}
	return pkg + "." + recvType(d) + "." + d.Name.Name
}

// recvType is the name of a method's receiver type.
func recvType(d *ast.FuncDecl) string {
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch t := t.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr:
		if id, ok := t.X.(*ast.Ident); ok {
			return id.Name
		}
	}
	return "?"
}

// litType is the package and name of a composite literal's type, if it is
// a named type of this module.
func litType(sf srcFile, e ast.Expr) (pkg, name string) {
	switch e := e.(type) {
	case *ast.Ident:
		return sf.pkg, e.Name
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && sf.imports[x.Name] != "" {
			return sf.imports[x.Name], e.Sel.Name
		}
	}
	return "", ""
}

// constValue is the value of a string literal or of a string constant of
// this module.
func constValue(pkgs map[string]*srcPkg, sf srcFile, e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		}
	case *ast.Ident:
		if p := pkgs[sf.pkg]; p != nil {
			s, ok := p.consts[e.Name]
			return s, ok
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && sf.imports[x.Name] != "" {
			if p := pkgs[sf.imports[x.Name]]; p != nil {
				s, ok := p.consts[e.Sel.Name]
				return s, ok
			}
		}
	}
	return "", false
}

// TestDeriveFixture runs the scan on a module in miniature
// (testdata/emitmod), one way of emitting a code per case.
func TestDeriveFixture(t *testing.T) {
	scan := derive(t, filepath.Join("testdata", "emitmod"))
	require.Equal(t, []string{"G1", "G2", "cp-x check all", "cp-x other", "cp-x run", "cp-x scoped", "request path"}, scan.emitters)
	for code, want := range map[string][]string{
		"INVALID_JSON":      {"request path"},         // cli.Errorf in the request path
		"X_REFUSED":         {"cp-x run"},             // cli.Errorf in a verb's Run
		"X_SCOPE":           {"cp-x scoped"},          // in a verb's Scope
		"LIB_BUSY":          {"cp-x scoped"},          // a constant through an import, to a code parameter, from a factory's closure
		"LIB_BAD":           {"cp-x check all"},       // a type whose Code() is a constant, built in a func literal's callee
		"LIB_APPEND":        {"cp-x other"},           // assigned to code, in a method reached through an interface
		"G1_FINDING":        {"G1", "cp-x check all"}, // a gate's fail
		"G1_WARNING":        {"G1", "cp-x check all"}, // a gate's warn, in a helper
		"G2_FINDING":        {"G2", "cp-x other"},     // a func literal with a code parameter
		"DEAD_CODE":         nil,                      // emitted where nothing reaches
		"LIB_DECLARED_ONLY": nil,                      // declared, never used
	} {
		require.Equal(t, want, scan.derivedEmitters(code), code)
	}
	require.Equal(t, []string{`internal/xcmd/x.go:33 "X_" + kind`}, scan.built, "a code built at run time is found")
	require.Len(t, scan.sites["DEAD_CODE"], 1, "a site all the same")
	require.Empty(t, scan.sites["LIB_DECLARED_ONLY"], "a declaration is not a site")
	require.ElementsMatch(t, []string{"cp-x check all", "cp-x other", "cp-x run", "cp-x scoped"}, scan.verbs["cp-x"], "a verb in the tool's list or in a variable of its package")
}

func TestCompress(t *testing.T) {
	verbs := map[string][]string{"cp-a": {"cp-a one", "cp-a two"}, "cp-b": {"cp-b one"}}
	for _, tc := range []struct{ derived, want []string }{
		{[]string{"cp-a one"}, []string{"cp-a one"}},
		{[]string{"cp-a one", "cp-a two"}, []string{"cp-a"}},
		{[]string{"cp-a one", "cp-b one"}, []string{"every binary"}},
		{[]string{"G6", "RECEIPTS", "G0A", "request path", "cp-a two"}, []string{"request path", "cp-a two", "G0A", "G6", "RECEIPTS"}},
		{nil, nil},
	} {
		require.Equal(t, tc.want, compress(tc.derived, verbs), "%q", tc.derived)
	}
}
