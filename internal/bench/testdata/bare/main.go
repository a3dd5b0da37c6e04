// Command bare reads stdin and exits: the baseline a single cp-ledger append
// process is measured against.
package main

import (
	"io"
	"os"
)

func main() {
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		os.Exit(1)
	}
}
