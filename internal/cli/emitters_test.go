package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/tools/go/packages"
)

// This file derives, from the Go sources, where each error code is emitted
// and which emitters (a binary's verb, a gate, the request path) reach
// those places. The catalogue test (catalog_test.go) checks every row's
// EmittedBy against it.
//
// What it reads: the module's packages as the default build has them
// (golang.org/x/tools/go/packages: its non-test files, type-checked, so
// that a file a build tag leaves out is not read and a method call is
// resolved by its types), or, for a tree without a go.mod, every non-test
// .go file outside testdata, vendor and dot directories, parsed alone.
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
// other selector x.M that names a method:
//   - typed (the module loaded): the method itself when x is not an
//     interface; when it is, every method named M that methodScope says
//     the call may reach whose receiver type implements x's interface (an
//     interface of the standard library is not followed: io.Writer's Write
//     would reach every writer of the module). A field (a func value) is
//     not a method: its func literal belongs to where it is written;
//   - untyped (a tree without go.mod): every method named M that
//     methodScope says it may name, matched by name.
// methodScope: an unexported method of its own package; an exported one of
// its own package, of the module packages its file imports, and of the
// packages its package depends on that import one of those (a driver
// behind an interface). Not followed: error-protocol methods (Code, Kind,
// Error, ErrorDetails, ErrorHint, ErrorResult, Unwrap: a Code() call reads
// a code, it does not emit one); untyped, the standard interfaces' methods
// by name (Write, Read, Close, String, ...: see ioMethods); and a selector
// on a value of a package outside the module (os.Stdout.Write).
//
// Links. A binary's verb is attributed a code only if the code's site is in
// a package that binary links (cmd/<tool>'s import closure: what go list
// -deps says, checked by TestLinkSets): its reach does not enter a package
// the binary does not link.
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
// The reach approximates the call graph: an interface call reaches every
// implementation in scope (class hierarchy analysis), and a func value
// passed around is followed only where it is written. The test
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
	links    map[string]map[string]bool // tool -> the module packages its binary links (cmd/<tool>'s import closure)
	closure  map[string][]string        // package -> the module packages it imports, directly or not
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
	info    *types.Info       // nil when the tree is parsed untyped
	imports map[string]string // name in the file -> import path (module packages only)
	others  map[string]bool   // names of the other packages the file imports
}

type srcPkg struct {
	funcs     map[string]bool       // top-level functions
	vars      map[string]bool       // package-level variables
	methods   map[string][]string   // method name -> node keys
	consts    map[string]string     // string constants
	raisers   map[string]int        // function, method or func var -> index of its code parameter
	typeCodes map[string][]string   // type -> the constant codes its Code() returns
	imports   map[string]bool       // module packages imported by any file
	recvs     map[string]types.Type // method node key -> its receiver's named type (typed only)
}

// derived caches derive's scans by root: loading the module with its
// types takes seconds, and several tests read the same scan.
var derived = map[string]*emitScan{}

// derive scans the module under root (once per test binary).
func derive(t *testing.T, root string) *emitScan {
	t.Helper()
	if s := derived[root]; s != nil {
		return s
	}
	s := deriveScan(t, root)
	derived[root] = s
	return s
}

func deriveScan(t *testing.T, root string) *emitScan {
	t.Helper()
	fset := token.NewFileSet()
	var files []srcFile
	pkgs := map[string]*srcPkg{}
	typed := loadTyped(t, fset, root)
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
		var f *ast.File
		var info *types.Info
		if typed != nil {
			abs, err := filepath.Abs(p)
			if err != nil {
				return err
			}
			tf, ok := typed[abs]
			if !ok {
				return nil // not in the default build (a build tag leaves it out)
			}
			f, info = tf.file, tf.info
		} else if f, err = parser.ParseFile(fset, p, nil, parser.SkipObjectResolution); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		sf := srcFile{pkg: pkg, file: f, info: info, imports: map[string]string{}, others: map[string]bool{}}
		sp := pkgs[pkg]
		if sp == nil {
			sp = &srcPkg{funcs: map[string]bool{}, vars: map[string]bool{}, methods: map[string][]string{},
				consts: map[string]string{}, raisers: map[string]int{}, typeCodes: map[string][]string{}, imports: map[string]bool{},
				recvs: map[string]types.Type{}}
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
					if info != nil {
						if fn, ok := info.Defs[d.Name].(*types.Func); ok {
							sp.recvs[nodeKey(pkg, d)] = namedRecv(fn)
						}
					}
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
	toolOfEmitter := map[string]string{}

	absRoot, err := filepath.Abs(root)
	require.NoError(t, err)
	at := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		name := p.Filename
		if !filepath.IsAbs(name) {
			name, _ = filepath.Abs(name)
		}
		rel, _ := filepath.Rel(absRoot, name)
		return filepath.ToSlash(rel) + ":" + strconv.Itoa(p.Line)
	}

	// walk collects the references and sites of one node's body.
	nodePkg := map[string]string{} // node -> its package
	walk := func(sf srcFile, key string, body ast.Node) {
		sp := pkgs[sf.pkg]
		nodePkg[key] = sf.pkg
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
				if sf.info != nil {
					methodEdges(sf, pkgs, closure, scopes, n, out)
					return true
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
		toolOfEmitter[emitter] = tool
		key := sf.pkg + ".verb." + name
		for _, fn := range fns {
			walk(sf, key, fn) // an identifier, a call of a factory, or a func literal
		}
		roots[emitter] = append(roots[emitter], key)
	}

	scan.edges, scan.roots, scan.closure = edges, roots, closure
	scan.reach, scan.reaches = map[string][]string{}, map[string]map[string]bool{}
	scan.links = map[string]map[string]bool{}
	for _, tool := range toolOfEmitter {
		if main := module + "/cmd/" + tool; pkgs[main] != nil && scan.links[tool] == nil {
			scan.links[tool] = map[string]bool{main: true}
			for _, p := range closure[main] {
				scan.links[tool][p] = true
			}
		}
	}
	for e, rs := range roots {
		// A verb's reach stays inside what its binary links.
		links := scan.links[toolOfEmitter[e]]
		seen := map[string]bool{}
		stack := slices.Clone(rs)
		for _, r := range rs {
			seen[r] = true
		}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for m := range edges[n] {
				if !seen[m] && (links == nil || links[nodePkg[m]]) {
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
		"LIB_OTHER_APPEND":  nil,                      // a method of the same name whose type does not implement the interface called
		"LIB_UNLINKED":      nil,                      // nothing reaches it
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

// typedFile is a file of the module as go/packages loaded it.
type typedFile struct {
	file *ast.File
	info *types.Info
}

// loadTyped loads the module at root with its types (the default build:
// no test files, build tags as go build has them), by absolute file name;
// nil when root holds no go.mod (a tree parsed untyped). A package with
// type errors is kept: what its types resolve is used, the rest is not
// followed.
func loadTyped(t *testing.T, fset *token.FileSet, root string) map[string]typedFile {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil
	}
	cfg := &packages.Config{Dir: root, Fset: fset, Env: append(os.Environ(), "GOWORK=off"),
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles | packages.NeedSyntax |
			packages.NeedTypes | packages.NeedTypesInfo | packages.NeedImports}
	ps, err := packages.Load(cfg, "./...")
	require.NoError(t, err)
	out := map[string]typedFile{}
	for _, p := range ps {
		for i, f := range p.Syntax {
			if i < len(p.CompiledGoFiles) {
				out[p.CompiledGoFiles[i]] = typedFile{file: f, info: p.TypesInfo}
			}
		}
	}
	return out
}

// namedRecv is the named type a method is declared on (its origin, for a
// generic type's).
func namedRecv(fn *types.Func) types.Type {
	r := fn.Type().(*types.Signature).Recv()
	if r == nil {
		return nil
	}
	rt := r.Type()
	if p, ok := rt.(*types.Pointer); ok {
		rt = p.Elem()
	}
	if n, ok := rt.(*types.Named); ok {
		return n.Origin()
	}
	return nil
}

// methodEdges adds to out the methods a typed selector n may call: the
// method itself on a concrete receiver; on an interface, every method of
// that name in methodScope whose receiver type implements it.
func methodEdges(sf srcFile, pkgs map[string]*srcPkg, closure map[string][]string, scopes map[*ast.File][]string, n *ast.SelectorExpr, out map[string]bool) {
	sel := sf.info.Selections[n]
	if sel == nil || sel.Kind() == types.FieldVal || notFollowed[n.Sel.Name] {
		return // a qualified name, a field, or an error-protocol method
	}
	fn, ok := sel.Obj().(*types.Func)
	if !ok || fn.Pkg() == nil {
		return
	}
	if !types.IsInterface(sel.Recv()) {
		r, ok := namedRecv(fn.Origin()).(*types.Named)
		if ok && fn.Pkg() != nil && (fn.Pkg().Path() == module || strings.HasPrefix(fn.Pkg().Path(), module+"/")) {
			out[fn.Pkg().Path()+"."+r.Obj().Name()+"."+fn.Name()] = true
		}
		return
	}
	if p := fn.Pkg().Path(); p != module && !strings.HasPrefix(p, module+"/") {
		return // a standard or third-party interface's method (io.Writer's Write)
	}
	iface, _ := sel.Recv().Underlying().(*types.Interface)
	scope := []string{sf.pkg}
	if ast.IsExported(n.Sel.Name) {
		if scopes[sf.file] == nil {
			scopes[sf.file] = methodScope(sf, pkgs, closure)
		}
		scope = scopes[sf.file]
	}
	for _, p := range scope {
		q := pkgs[p]
		if q == nil {
			continue
		}
		for _, m := range q.methods[n.Sel.Name] {
			if implements(q.recvs[m], iface) {
				out[m] = true
			}
		}
	}
}

// implements reports whether T or *T implements iface (true when either
// is unknown: followed rather than missed).
func implements(t types.Type, iface *types.Interface) bool {
	if t == nil || iface == nil {
		return true
	}
	if n, ok := t.(*types.Named); ok && n.TypeParams().Len() > 0 {
		return true // a generic type: not instantiated here
	}
	return types.Implements(t, iface) || types.Implements(types.NewPointer(t), iface)
}

// TestLinkSets holds the packages the scan says each binary links (the
// import closure of cmd/<tool>, from the sources of the default build) to
// what go list -deps says, and every verb's attributed sites to them: a
// code is attributed to a binary only if a package that binary links
// emits it.
func TestLinkSets(t *testing.T) {
	scan := derive(t, filepath.Join("..", ".."))
	require.Contains(t, scan.links, "cp-trace")
	for tool, links := range scan.links {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/"+tool)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		require.NoError(t, err, "go list -deps ./cmd/%s", tool)
		var want []string
		for _, p := range strings.Fields(string(out)) {
			if p == module || strings.HasPrefix(p, module+"/") {
				want = append(want, p)
			}
		}
		slices.Sort(want)
		require.Equal(t, want, slices.Sorted(maps.Keys(links)), "the module packages cmd/%s links", tool)
	}
	for code, sites := range scan.sites {
		for _, e := range scan.emitters {
			tool, _, ok := strings.Cut(e, " ")
			if !ok || scan.links[tool] == nil {
				continue
			}
			for _, st := range sites {
				if scan.reaches[e][st.node] {
					i := strings.LastIndex(st.node, "/")
					pkg := st.node[:i+strings.Index(st.node[i:], ".")]
					require.True(t, scan.links[tool][pkg], "%s attributed to %s at %s, in %s, which %s does not link", code, e, st.at, pkg, tool)
				}
			}
		}
	}
}
