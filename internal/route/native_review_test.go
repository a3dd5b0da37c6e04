package route

import (
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// TestNativeAsGojqEdges: the review's edge cases (numbers past int64 and
// float64, 1 vs 1.0, strings against numbers, missing keys, arrays and
// objects under .name, unicode, // with false), native against gojq.
func TestNativeAsGojqEdges(t *testing.T) {
	exprs := []string{
		`.n == 100000000000000000001`, `.n == 100000000000000000000`, `.n > 9223372036854775807`, `.n < -9223372036854775808`,
		`.n == 1.0`, `.n == 1`, `.n == 1e0`, `.n == 0.1e1`, `.n == 1.7976931348623157e308`, `.n == 1e309`, `.n == -1e309`,
		`.n == 9007199254740993`, `.n == 9007199254740992`, `.n == 0`, `.n == -0`, `.n == 0.0`,
		`.s < 1`, `.s > 1`, `.n < "1"`, `.n == "1"`, `.s == null`, `.missing == null`, `.missing.deeper == null`,
		`.arr.x == null`, `.obj.x == 1`, `.s.x == null`, `.n.x == null`, `.b.x == null`,
		`.f // true`, `.f // "x" == "x"`, `(.f // .n) == 1`, `.f and true`, `.f or .n`, `null // false`, `false // null`,
		`.u == "\u00e9"`, `.u == "e\u0301"`, `.u | startswith("\u00e9")`, `.u | endswith("")`, `.e | startswith("\ud83d")`,
		`.arr | index(1)`, `.arr | index(1) == 0`, `.arr | index(1.0) == 0`, `.arr | index(null) == null`, `.arr | index({}) == 3`,
		`.arr | index([]) == null`, `.obj | has("x")`, `.obj | has("")`, `.arr | has("x")`, `.arr | has(0)`, `has(.s)`,
		`.obj == {"x":1}`, `.arr == []`, `[] == .arr`, `.arr > .obj`, `.obj > .arr`, `.s > .arr`, `null < false`, `false < true`, `true < 0`,
		`.n | not`, `.f | not | not`, `.s | startswith(.s)`, `.s | endswith(.u)`, `(.s == "1") == (.n == 1)`,
		`.big == .bigf`, `.big > .bigf`, `.big < .bigf`, `.bigf == 1e20`, `.big == 1e20`, `.nf == 1`, `.nf < 1`, `.nf > 1`,
	}
	reqs := []string{
		`{"n":1,"s":"1","f":false,"u":"é","e":"😀","arr":[1,"a",null,{}],"obj":{"x":1},"b":true,"big":100000000000000000000,"bigf":1e20,"nf":1.0000000000000002}`,
		`{"n":1.0,"s":"","f":null,"u":"é","arr":[],"obj":{},"big":100000000000000000001,"bigf":100000000000000000001.0,"nf":0.9999999999999999}`,
		`{"n":100000000000000000000,"s":"abc","f":true,"arr":[[1],1],"obj":{"x":"1"},"big":-100000000000000000000,"nf":1e-400}`,
		`{"n":9007199254740993,"s":"é","arr":[1.0],"obj":null,"big":9223372036854775808,"bigf":9223372036854775807,"nf":-0.0}`,
		`{"n":-0,"s":null,"arr":null,"obj":[],"big":18446744073709551616,"bigf":18446744073709551615}`,
		`{"n":1e308,"s":["x"],"arr":"s","obj":"s","big":-9223372036854775809,"bigf":-9223372036854775808}`,
		`{"n":-9223372036854775809,"s":{"x":1},"arr":{"x":1},"obj":1}`,
	}
	for _, src := range exprs {
		for _, rs := range reqs {
			checkNative(t, src, decode(t, rs))
		}
		for _, rs := range []string{`[]`, `null`, `"s"`, `1`, `1e400`, `[1]`} { // not an object: rules never see one, the evaluators still agree
			v, err := jcs.Decode([]byte(rs))
			require.NoError(t, err)
			checkNative(t, src, v)
		}
	}
}
