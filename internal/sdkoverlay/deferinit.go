package sdkoverlay

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A module whose internal/apijson is patched with DeferRegistrations (the
// manifest patches ApijsonRegistry) also has its generated registration
// inits deferred: every package's `func init()` whose statements are all
// calls of apijson.RegisterUnion, RegisterFieldValidator or
// RegisterDiscriminatedUnion is renamed (cpDeferredInitN), and one file
// added to the package (DeferredInitsFile) passes them, in the order Go
// would have run them, to apijson.DeferRegistrations at its init: they run
// at the first read of a registry instead of at every process's start
// (~550 functions in openai-go and anthropic-sdk-go, each on its own page
// of a 60 MB binary). The renamed files and the added ones are written
// under outDir/_sdkgen (the module cache's copy is checked whole against
// go.sum before: checkSums).
const (
	ApijsonRegistry   = "internal/apijson/registry.go"
	DeferredInitsFile = "zz_cp_deferred_inits.go"
	// CountsFunc is the function DeferredInitsFile adds to a module's
	// root package: how many registrations were deferred, and how many
	// have run.
	CountsFunc = "CPDeferredRegistrations"
)

// registrations are the apijson functions a deferrable init may call.
var registrations = []string{"RegisterUnion", "RegisterFieldValidator", "RegisterDiscriminatedUnion"}

// deferInits rewrites module modPath's packages under modDir (module
// cache) for the virtual directory virtual, writing the files under gen;
// replace gains virtual file => written file. skip lists the module's
// files the manifest patches (never rewritten). It returns how many inits
// it deferred.
func deferInits(modPath, modDir, virtual, gen string, skip map[string]bool, replace map[string]string) (int, error) {
	apijson := modPath + "/internal/apijson"
	dirs := map[string][]string{}
	err := filepath.WalkDir(modDir, func(file string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if file != modDir && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(file, ".go") && !strings.HasSuffix(file, "_test.go") {
			dir := filepath.Dir(file)
			dirs[dir] = append(dirs[dir], file)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	keys := make([]string, 0, len(dirs))
	for dir := range dirs {
		keys = append(keys, dir)
	}
	slices.Sort(keys)
	total := 0
	for _, dir := range keys {
		rel, err := filepath.Rel(modDir, dir)
		if err != nil {
			return 0, err
		}
		if filepath.ToSlash(rel) == "internal/apijson" {
			continue
		}
		n, err := deferPackage(apijson, modDir, dir, virtual, gen, dirs[dir], skip, replace)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// deferPackage is deferInits for one directory's files (Go runs a
// package's inits in the order of its files' names, then of declaration:
// the names are listed in that order). A package is left as it is when
// any of its files is patched or build-constrained and has deferrable
// inits, or has an init that calls a registration among other statements:
// deferring only some registrations could change which of two
// registrations of one type wins.
func deferPackage(apijson, modDir, dir, virtual, gen string, files []string, skip map[string]bool, replace map[string]string) (int, error) {
	slices.Sort(files)
	type rewrite struct {
		rel string
		out []byte
	}
	var rewrites []rewrite
	var names []string
	pkgName := ""
	for _, file := range files {
		rel, err := filepath.Rel(modDir, file)
		if err != nil {
			return 0, err
		}
		src, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
		if err != nil {
			return 0, fmt.Errorf("deferring inits: %v", err)
		}
		if pkgName == "" {
			pkgName = f.Name.Name
		} else if f.Name.Name != pkgName {
			return 0, nil // several packages (a generator's ignored files)
		}
		inits, mixed := deferrable(f, apijson)
		if mixed {
			return 0, nil
		}
		if len(inits) == 0 {
			continue
		}
		if skip[filepath.ToSlash(rel)] || constrained(f, filepath.Base(file)) {
			return 0, nil
		}
		// Rename each deferrable init, the file's bytes otherwise
		// unchanged (from the end, so earlier offsets stay valid).
		base := len(names)
		out := slices.Clone(src)
		for i := len(inits) - 1; i >= 0; i-- {
			off := fset.Position(inits[i].Name.Pos()).Offset
			if !bytes.HasPrefix(out[off:], []byte("init")) {
				return 0, fmt.Errorf("deferring inits: %s: no init at offset %d", file, off)
			}
			out = slices.Concat(out[:off], []byte(deferredName(base+i)), out[off+len("init"):])
		}
		for i := range inits {
			names = append(names, deferredName(base+i))
		}
		rewrites = append(rewrites, rewrite{rel, out})
	}
	if len(names) == 0 || pkgName == "main" {
		return 0, nil
	}
	for _, r := range rewrites {
		written := filepath.Join(gen, r.rel)
		if err := writeFile(written, r.out); err != nil {
			return 0, err
		}
		replace[filepath.Join(virtual, r.rel)] = written
	}
	relDir, err := filepath.Rel(modDir, dir)
	if err != nil {
		return 0, err
	}
	if _, err := os.Lstat(filepath.Join(dir, DeferredInitsFile)); err == nil {
		return 0, fmt.Errorf("deferring inits: %s already exists upstream", filepath.Join(relDir, DeferredInitsFile))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/sdkoverlay (Control Plane, third_party/README.md). DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package %s\n\nimport cpapijson %q\n\n", pkgName, apijson)
	fmt.Fprintf(&b, "// The package's registration inits, renamed: they run at the first read of\n// apijson's registries, in this order (Go's init order).\nfunc init() {\n\tcpapijson.DeferRegistrations(\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t\t%s,\n", n)
	}
	fmt.Fprintf(&b, "\t)\n}\n")
	if relDir == "." {
		// The module's root package reports the counts, so a program
		// built with the overlay can show that the registrations were
		// deferred and then ran (TestDeferredInitsDecode).
		fmt.Fprintf(&b, "\n// %s reports how many registration inits the overlay deferred in this\n// module's linked packages, and how many of them have run.\nfunc %s() (deferred, ran int) { return cpapijson.DeferredCounts() }\n", CountsFunc, CountsFunc)
	}
	written := filepath.Join(gen, relDir, DeferredInitsFile)
	if err := writeFile(written, b.Bytes()); err != nil {
		return 0, err
	}
	replace[filepath.Join(virtual, relDir, DeferredInitsFile)] = written
	return len(names), nil
}

func deferredName(i int) string { return "cpDeferredInit" + strconv.Itoa(i) }

// deferrable returns f's inits whose every statement calls one of
// apijson's registrations; mixed if another init of f calls one among
// other statements.
func deferrable(f *ast.File, apijson string) (out []*ast.FuncDecl, mixed bool) {
	local := ""
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil || p != apijson {
			continue
		}
		local = path.Base(p)
		if imp.Name != nil {
			local = imp.Name.Name
		}
	}
	if local == "" || local == "_" || local == "." {
		return nil, false
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil || fd.Name.Name != "init" || fd.Body == nil {
			continue
		}
		all, some := true, false
		for _, st := range fd.Body.List {
			if isRegistration(st, local) {
				some = true
			} else {
				all = false
			}
		}
		switch {
		case all && some:
			out = append(out, fd)
		case some:
			return nil, true
		}
	}
	return out, false
}

// isRegistration: st is `local.Register…[T…](args…)`.
func isRegistration(st ast.Stmt, local string) bool {
	es, ok := st.(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	fun := call.Fun
	switch x := fun.(type) {
	case *ast.IndexExpr:
		fun = x.X
	case *ast.IndexListExpr:
		fun = x.X
	}
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == local && slices.Contains(registrations, sel.Sel.Name)
}

// constrained: f has a build constraint, or a name a GOOS or GOARCH
// suffix could constrain (any "_": the SDKs' generated files have none).
func constrained(f *ast.File, name string) bool {
	if strings.Contains(strings.TrimSuffix(name, ".go"), "_") {
		return true
	}
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:build") || strings.HasPrefix(c.Text, "// +build") {
				return true
			}
		}
	}
	return false
}
