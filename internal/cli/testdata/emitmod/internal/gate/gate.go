package gate

type Result struct{ Gate string }

func newResult(g string) *Result { return &Result{Gate: g} }

func (r *Result) fail(code, path string) {}
func (r *Result) warn(code, path string) {}

func G1() *Result {
	r := newResult("G1")
	r.fail("G1_FINDING", "p")
	check(r)
	return r
}

func check(r *Result) { r.warn("G1_WARNING", "p") }

func G2() *Result {
	r := newResult("G2")
	fail := func(code, path string) { r.fail(code, path) }
	fail("G2_FINDING", "p")
	return r
}
