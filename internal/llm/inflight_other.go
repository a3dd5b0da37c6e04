//go:build !linux

package llm

import (
	"errors"
	"os"
)

// inflightSupported: no open-file-description locks here, so no
// reservation is marked in flight and none is judged abandoned: an
// unsettled one counts in full, for ever.
const inflightSupported = false

type inflightHolder struct{ id string }

func fileID(*os.File) (string, error) { return "", errors.New("in-flight marks need Linux") }

func openInflight(string) (*inflightHolder, error) {
	return nil, errors.New("in-flight marks need Linux")
}
func (*inflightHolder) hold(string) error { return errors.New("in-flight marks need Linux") }
func (*inflightHolder) close()            {}
func inflightHeld(*os.File, string) (bool, error) {
	return true, errors.New("in-flight marks need Linux")
}
