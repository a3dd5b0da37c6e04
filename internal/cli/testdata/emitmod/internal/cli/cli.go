package cli

type Tool struct {
	Name  string
	Verbs []*Verb
}

type Verb struct {
	Name  string
	Run   func() error
	Scope func() error
}

type Error struct{ Code string }

func Errorf(exit int, code, format string, args ...any) *Error { return &Error{Code: code} }

// The request path: reading a request.
func RunWith(t *Tool) error {
	if t == nil {
		return Errorf(3, "INVALID_JSON", "x")
	}
	return nil
}

func Main(run func()) {}

func Dispatch(t *Tool) error { return RunWith(t) }

// never called from a root.
func unused() error { return Errorf(5, "DEAD_CODE", "x") }
