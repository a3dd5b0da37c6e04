package openai_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A schema decoded with UseNumber (as every request is) reaches the
// provider with its numbers as numbers.
func TestSchemaNumbers(t *testing.T) {
	s, ts := newServer(t, completion(`{"n":2}`, "stop", 1, 1))
	p := open(t, ts.URL+"/v1", key, &sleeps{})
	dec := json.NewDecoder(strings.NewReader(`{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":1,"maximum":10.5}}}`))
	dec.UseNumber()
	var schema map[string]any
	require.NoError(t, dec.Decode(&schema))
	req := request()
	req.Schema = schema
	_, err := p.Complete(context.Background(), req)
	require.NoError(t, err)
	n := s.bodies[0]["response_format"].(map[string]any)["json_schema"].(map[string]any)["schema"].(map[string]any)["properties"].(map[string]any)["n"].(map[string]any)
	require.Equal(t, float64(1), n["minimum"])
	require.Equal(t, 10.5, n["maximum"])
}
