// Command sdkoverlay writes build/overlay.json for the module in the
// current directory (or -root) and prints its path; it exits 1, writing
// nothing, when a patch in third_party/overlay does not match go.mod's
// version or the upstream file's hash (package sdkoverlay). The Makefile
// runs it before every go command and passes the overlay in GOFLAGS.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/control-plane/cp/internal/sdkoverlay"
)

func main() {
	root := flag.String("root", ".", "the module's root directory")
	flag.Parse()
	path, err := sdkoverlay.Generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkoverlay:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
