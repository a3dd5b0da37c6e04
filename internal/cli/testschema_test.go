package cli

import (
	"io/fs"
	"os"

	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/schemas"
)

// The test tool's request schema (cp-test.echo.request.json) is not
// shipped: it lives in testdata, and the tests compile schemas from there
// first, then from the binaries' embedded set.
func init() {
	schemaCompiler = schema.NewCompiler(layered{os.DirFS("testdata"), schemas.FS}, schemas.BaseURL).LazyRefs()
}

// layered opens a file from the first file system that has it.
type layered []fs.FS

func (l layered) Open(name string) (fs.File, error) {
	for _, fsys := range l[:len(l)-1] {
		if f, err := fsys.Open(name); err == nil {
			return f, nil
		}
	}
	return l[len(l)-1].Open(name)
}
