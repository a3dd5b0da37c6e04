package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// verdictTool has verbs whose text views claim success, as a careless view
// would: the runner must never let them speak for a failure.
func verdictTool() *Tool {
	type report struct {
		Valid   bool     `json:"valid"`
		Entries int      `json:"entries"`
		Issues  []string `json:"issues"`
	}
	run := func(ctx context.Context, c *Call, req Request) Outcome {
		if req.String("name") == "bad" {
			e := Errorf(ExitDenied, "HASH_MISMATCH", "seq 1 does not hash to its entry_hash")
			e.Result = report{Valid: false, Entries: 3, Issues: []string{"seq 1"}}
			return Outcome{Err: e}
		}
		if req.String("name") == "refused" { // a failure whose outcome carries the would-be result
			return Outcome{Result: report{Valid: true, Entries: 3}, Err: Errorf(ExitDenied, "SIGNATURE_MISSING", "no signature").WithHint("sign it")}
		}
		return Outcome{Result: report{Valid: true, Entries: 3, Issues: []string{}}}
	}
	success := func(w io.Writer, result any) error {
		_, err := io.WriteString(w, "ledger valid\n")
		return err
	}
	panics := func(w io.Writer, result any) error {
		_ = result.(string) // the shape of the stage panic: a view that meets another type
		return nil
	}
	return &Tool{Name: "cp-test", Usage: "usage\n", Verbs: []*Verb{
		{Name: "echo", Schema: "cp-test.echo.request.json", Flags: []Flag{{Name: "name", Kind: String}}, Run: run, Text: success},
		{Name: "panics", Schema: "cp-test.echo.request.json", Flags: []Flag{{Name: "name", Kind: String}}, Run: run, Text: panics, FailedText: panics},
		{Name: "plain", Schema: "cp-test.echo.request.json", Flags: []Flag{{Name: "name", Kind: String}}, Run: run},
		{Name: "stream", Schema: "cp-test.echo.request.json", Flags: []Flag{{Name: "name", Kind: String}}, Run: run, Text: success, Stream: true},
	}}
}

func runText(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	code := Run(context.Background(), verdictTool(), args, in, &out, &errb)
	return code, out.String(), errb.String()
}

// Item 1 of issue 10: a text view never reads as success on a negative
// verdict, and every verb has a text view.
func TestTextVerdict(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stdin     string
		args      []string
		code      int
		first     string // stdout's first line
		contains  []string
		forbidden []string
	}{
		{"success uses the verb's view", "", []string{"echo", "--format", "text"}, ExitOK, "ledger valid", nil, nil},
		{"failure with a result", "", []string{"echo", "--name", "bad", "--format", "text"}, ExitDenied,
			"error: HASH_MISMATCH: seq 1 does not hash to its entry_hash", []string{"valid: false", "entries: 3", "  - seq 1"}, []string{"ledger valid"}},
		{"failure whose outcome carries a result", "", []string{"echo", "--name", "refused", "--format", "text"}, ExitDenied,
			"error: SIGNATURE_MISSING: no signature", []string{"hint: sign it"}, []string{"ledger valid"}},
		{"stream failure", `{"name":"ok"}` + "\n" + `{"name":"bad"}` + "\n", []string{"stream", "--format", "text"}, ExitDenied,
			"ledger valid", []string{"error: HASH_MISMATCH"}, nil},
		{"a panicking view falls back to fields", "", []string{"panics", "--format", "text"}, ExitOK, "valid: true", nil, nil},
		{"a panicking failure view falls back to fields", "", []string{"panics", "--name", "bad", "--format", "text"}, ExitDenied,
			"error: HASH_MISMATCH: seq 1 does not hash to its entry_hash", []string{"valid: false"}, []string{"panic"}},
		{"no view: fields, not JSON", "", []string{"plain", "--format", "text"}, ExitOK, "valid: true", []string{"entries: 3", "issues: (none)"}, []string{"{"}},
		{"usage error", "", []string{"echo", "--nme", "x", "--format", "text"}, ExitUsage,
			"error: USAGE: echo: unknown flag --nme", []string{"hint: did you mean --name?"}, []string{"{"}},
		{"error before the flags are read", "", []string{"nosuch", "--format=text"}, ExitUsage, `error: USAGE: unknown verb "nosuch"`, []string{"hint: run cp-test -h"}, []string{"{"}},
		{"a mistyped verb", "", []string{"ecko", "--format", "text"}, ExitUsage, `error: USAGE: unknown verb "ecko"`, []string{"hint: did you mean cp-test echo?"}, nil},
		{"invalid stdin", "{bad", []string{"echo", "--format", "text"}, ExitInvalid, "error: INVALID_JSON: stdin is not valid JSON: offset 1: ", nil, []string{"jcs:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := runText(t, tc.stdin, tc.args...)
			require.Equal(t, tc.code, code, "exit code; stdout:\n%s", out)
			first, _, _ := strings.Cut(out, "\n")
			require.True(t, strings.HasPrefix(first, tc.first), "first line %q, want %q", first, tc.first)
			for _, s := range tc.contains {
				require.Contains(t, out, s)
			}
			for _, s := range tc.forbidden {
				require.NotContains(t, out, s)
			}
		})
	}
}

func TestFields(t *testing.T) {
	var b bytes.Buffer
	type inner struct {
		Z string `json:"z"`
		A int    `json:"a"`
	}
	require.NoError(t, Fields(&b, struct {
		Seq   int      `json:"seq"`
		Proof []string `json:"proof"`
		Note  string   `json:"checkpoint"`
		In    inner    `json:"inner"`
		List  []inner  `json:"list"`
	}{3, []string{"ab", "cd"}, "origin\n4\nroot\n", inner{"x", 1}, []inner{{"y", 2}}}))
	require.Equal(t, "seq: 3\nproof:\n  - ab\n  - cd\ncheckpoint:\n  origin\n  4\n  root\ninner.z: x\ninner.a: 1\nlist:\n  - z: y\n    a: 2\n", b.String())
}

// Item 3 of issue 10: /dev/null is a character device, not a terminal.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	require.False(t, isTerminal(null), "/dev/null is not a terminal")
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()
	require.False(t, isTerminal(pw), "a pipe is not a terminal")
	require.False(t, isTerminal(&bytes.Buffer{}))
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	require.True(t, isTerminal(ptmx), "a pseudo-terminal is a terminal")
}

// Item 10 of issue 10: a pretty-printed request larger than the read buffer
// parses whole; item 18: one larger than MaxRequest is refused.
func TestRequestSizes(t *testing.T) {
	pretty := func(size int) string {
		var b strings.Builder
		b.WriteString("{\n  \"name\": \"big\",\n  \"meta\": {\n")
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString(`    "k` + strconv.Itoa(i) + `": "` + strings.Repeat("v", 100) + `"`)
		}
		b.WriteString("\n  }\n}\n")
		return b.String()
	}
	for _, size := range []int{300 << 10, 2 << 20} {
		doc := pretty(size)
		for _, verb := range []string{"echo", "stream"} {
			r := run(t, doc, verb)
			require.Equal(t, ExitOK, r.code, "%s, %d bytes pretty: %s", verb, len(doc), r.stderr)
			require.Equal(t, "big", r.lines[0]["result"].(map[string]any)["name"])
		}
		line := strings.Join(strings.Fields(doc), "")
		r := run(t, line+"\n"+`{"name":"next"}`+"\n", "stream")
		require.Equal(t, ExitOK, r.code, "%d bytes on one line: %s", len(line), r.stderr)
		require.Len(t, r.lines, 2)
	}
	// Just under the cap, pretty-printed: read whole.
	near := "{\n  \"name\": \"" + strings.Repeat("x", MaxRequest-20) + "\"\n}\n"
	code, _, stderr := runText(t, near, "stream") // a tool that does not echo it back
	require.Equal(t, ExitOK, code, "%d bytes: %s", len(near), stderr)
	big := `{"name":"` + strings.Repeat("x", MaxRequest) + `"}`
	for _, tc := range []struct{ verb, stdin string }{
		{"echo", big},
		{"stream", big + "\n"},
		{"stream", `{"name":"ok"}` + "\n" + big + "\n"},
		{"stream", "{\n" + big[1:]},
	} {
		r := run(t, tc.stdin, tc.verb)
		require.Equal(t, ExitInvalid, r.code, "%s: %s", tc.verb, r.stderr)
		require.Equal(t, "REQUEST_TOO_LARGE", errCode(r.lines[len(r.lines)-1]))
	}
}

// Item 9 of issue 10: no Go package prefix in a message a user reads.
func TestUserMessage(t *testing.T) {
	for in, want := range map[string]string{
		"jcs: offset 0: invalid literal":                         "offset 0: invalid literal",
		"stdin is not valid JSON: jcs: offset 0: x":              "stdin is not valid JSON: offset 0: x",
		"manifest: assets/0/path: bad":                           "assets/0/path: bad",
		"reading ledger: open x: no such file":                   "reading ledger: open x: no such file",
		"archive: archive/tar: invalid tar header":               "invalid tar header",
		"--ledger audit.jsonl: a ledger is a file named X.jsonl": "--ledger audit.jsonl: a ledger is a file named X.jsonl",
	} {
		require.Equal(t, want, userMessage(in), in)
	}
}

// TestGoPrefixesComplete holds goPrefixes complete: every package of this
// module is in it.
func TestGoPrefixesComplete(t *testing.T) {
	for _, top := range []string{"../../pkg", "../../internal"} {
		err := filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || p == top {
				return err
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if gos, _ := filepath.Glob(filepath.Join(p, "*.go")); len(gos) > 0 {
				require.Contains(t, goPrefixes, d.Name(), "package %s is missing from goPrefixes", p)
			}
			return nil
		})
		require.NoError(t, err)
	}
}

func TestClosest(t *testing.T) {
	names := []string{"event-type", "submission-id", "metadata", "root", "format", "v", "ledger"}
	for word, want := range map[string]string{
		"event_type": "event-type", "eventtype": "event-type", "metdata": "metadata", "fromat": "format",
		"x": "", "zzzzzz": "", "ledgr": "ledger",
	} {
		require.Equal(t, want, closest(word, names), word)
	}
}

// An upstream error envelope shown as text reads as an error too.
func TestTextPassthrough(t *testing.T) {
	code, out, _ := runText(t, `{"status":"error","error":{"code":"LOCK_TIMEOUT","message":"ledger lock held"}}`, "echo", "--format", "text")
	require.Equal(t, ExitUnavailable, code)
	require.Equal(t, "error: LOCK_TIMEOUT: upstream: ledger lock held\n", out)
	code, out, _ = runText(t, `{"status":"error","error":{"code":"LOCK_TIMEOUT","message":"ledger lock held"}}`, "echo")
	require.Equal(t, ExitUnavailable, code)
	require.Equal(t, `{"status":"error","error":{"code":"LOCK_TIMEOUT","message":"ledger lock held"}}`+"\n", out)
}
