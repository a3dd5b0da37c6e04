package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A pretty-printed request to a stream verb is held to the cap with every
// byte of it counted, its indentation too: exactly MaxRequest bytes are
// read whole, one byte more is REQUEST_TOO_LARGE, as on one line.
func TestRequestCapExact(t *testing.T) {
	doc := func(size int) string {
		head, tail := "{\n  \"name\": \"", "\"\n}"
		return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	}
	for _, verb := range []string{"stream", "echo"} {
		exact := doc(MaxRequest)
		require.Len(t, exact, MaxRequest)
		code, _, stderr := runText(t, exact+"\n", verb)
		require.Equal(t, ExitOK, code, "%s, exactly the cap: %s", verb, stderr)
		r := run(t, doc(MaxRequest+1)+"\n", verb)
		require.Equal(t, ExitInvalid, r.code, "%s, the cap and one byte: %s", verb, r.stderr)
		require.Equal(t, "REQUEST_TOO_LARGE", errCode(r.lines[len(r.lines)-1]))
	}
}
