package routecmd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/schemas"
)

const routeSchema = "cp-route.route.request.json"

// plainRoutes are requests of the plain shape: the benchmarks' requests,
// every steering member, members the policy reads of any type.
var plainRoutes = []string{
	`{"intent":"deploy","user":"u0","text":"where is it?","variables":{"service":"api","n":0}}`,
	`{"intent":"chat","tags":["billing"],"user":"u3","variables":{"n":3}}`,
	`{}`,
	`{"plane":"ho1","session_id":"SES-20261206-0a1b2c3d","work_order_id":"WO-20261206-001","variables":{},"replay":0}`,
	`{"plane":"ho2","replay":999999999999999999,"x":null,"y":[1,2.5,"z"],"z":{"plane":"nowhere"}}`,
	`{"plane":"ho3","work_order_id":"` + strings.Repeat("é", 3) + `","session_id":"SES-00000000-ffffffff"}`,
}

// notPlainRoutes are just outside the shape: the schema judges them.
var notPlainRoutes = []string{
	`{"plane":"ho4"}`,
	`{"plane":"HO3"}`,
	`{"plane":3}`,
	`{"session_id":"SES-20261206-0A1B2C3D"}`,
	`{"session_id":"SES-2026126-0a1b2c3d"}`,
	`{"session_id":"SES-20261206_0a1b2c3d"}`,
	`{"session_id":"SES-20261206-0a1b2c3d "}`,
	`{"session_id":"SES-2026120a-0a1b2c3d"}`,
	`{"session_id":12}`,
	`{"work_order_id":""}`,
	`{"work_order_id":7}`,
	`{"variables":[]}`,
	`{"variables":null}`,
	`{"replay":-1}`,
	`{"replay":1.0}`,
	`{"replay":1e3}`,
	`{"replay":01}`,
	`{"replay":"1"}`,
	`{"replay":1000000000000000000}`,
}

func routeValidators(t testing.TB) (*schema.Schema, func(any) error) {
	ours, err := schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(routeSchema)
	require.NoError(t, err)
	theirs, err := schematest.Oracle(routeSchema)
	require.NoError(t, err)
	return ours, theirs.Validate
}

// TestPlainRoute: what callers send is plain (no schema compiled for it);
// a request just outside the shape is left to the schema.
func TestPlainRoute(t *testing.T) {
	ours, theirs := routeValidators(t)
	for _, doc := range plainRoutes {
		v, err := jcs.Decode([]byte(doc))
		require.NoError(t, err, doc)
		require.True(t, plainRoute(cli.Request(v.(map[string]any))), doc)
		require.Empty(t, ours.Validate(v), doc)
		require.NoError(t, theirs(v), doc)
	}
	for _, doc := range notPlainRoutes {
		v, err := jcs.Decode([]byte(doc))
		if err != nil {
			continue // not JSON our decoder reads (01): never a request
		}
		require.False(t, plainRoute(cli.Request(v.(map[string]any))), doc)
	}
	// Flags arrive as the runner builds them: --replay as a json.Number
	// of what strconv.ParseInt read.
	require.True(t, plainRoute(cli.Request{"replay": json.Number("12"), "session_id": "SES-20261206-0a1b2c3d"}))
	require.False(t, plainRoute(cli.Request{"replay": json.Number("+12")}))
	require.False(t, plainRoute(cli.Request{"replay": json.Number("-0")}))
	require.False(t, plainRoute(cli.Request{"replay": int64(12)}))
}

// FuzzPlainRoute holds plainRoute to a subset of the request schema: what
// it accepts, our validator and jsonschema/v6 accept.
func FuzzPlainRoute(f *testing.F) {
	for _, doc := range append(plainRoutes, notPlainRoutes...) {
		f.Add([]byte(doc))
	}
	ours, theirs := routeValidators(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := jcs.Decode(b)
		if err != nil {
			return
		}
		m, isObj := v.(map[string]any)
		if !isObj || !plainRoute(cli.Request(m)) {
			return
		}
		require.Empty(t, ours.Validate(v), "plainRoute accepted %s", b)
		require.NoError(t, theirs(v), "plainRoute accepted %s", b)
	})
}
