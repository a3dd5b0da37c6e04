package lib

// Codes, declared: a declaration is not a site.
const (
	CodeBusy     = "LIB_BUSY"
	CodeDeclared = "LIB_DECLARED_ONLY"
)

// Error is built with its code in a field.
type Error struct{ code string }

func (e *Error) Error() string { return e.code }
func (e *Error) Code() string  { return e.code }

func refuse(code string) error { return &Error{code: code} }

// Bad is an error whose Code() is a constant: built, it emits LIB_BAD.
type Bad struct{ Path string }

func (e *Bad) Error() string { return e.Path }
func (e *Bad) Code() string  { return "LIB_BAD" }

func Lock() error { return refuse(CodeBusy) }

func Parse(s string) error {
	if s == "" {
		return &Bad{Path: s}
	}
	return nil
}

// Store has a method reached through an interface by name.
type Store struct{}

func (s *Store) Append() error {
	var code string
	code = "LIB_APPEND"
	return &Error{code: code}
}

// Other has an Append too, of another signature: it does not implement
// the interface other_ calls Append through, so that call does not reach
// it (a scan by name would).
type Other struct{}

func (o *Other) Append(n int) error {
	var code string
	code = "LIB_OTHER_APPEND"
	return &Error{code: code}
}

// Unlinked is reached from nothing cp-x calls.
func Unlinked() error { return refuse("LIB_UNLINKED") }
