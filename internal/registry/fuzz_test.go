package registry

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzRead feeds arbitrary bytes to Read as each of the five tables. Read
// must not panic; a refusal must be a REGISTRY_INVALID *Error; and a file it
// accepts must be exactly the encoding of its rows (so nothing in it is lost
// or normalized), pass Update's checks, give stable bytes once sorted, and
// survive the typed Parse/Row conversion unchanged.
func FuzzRead(f *testing.F) {
	fx := fixtures()
	for i, tb := range All {
		f.Add(uint8(i), format(tb, fx[tb.File]))
		f.Add(uint8(i), format(tb, nil))
		f.Add(uint8(i), []byte(strings.Join(tb.Columns, ",")))
	}
	for _, s := range []string{"", "\n", "\uFEFFpath\n", "a,b\r\n", `"a""b",c` + "\n", "a,\"b\nc\"\n", "\"x"} {
		f.Add(uint8(3), []byte(s))
	}
	root := f.TempDir()
	require.NoError(f, os.Mkdir(filepath.Join(root, Dir), 0o755))

	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		tb := All[int(which)%len(All)]
		require.NoError(t, os.WriteFile(filepath.Join(root, Dir, tb.File), data, 0o644))
		rows, err := Read(root, tb)
		// Lookup never panics, and refuses with REGISTRY_INVALID or agrees
		// with Read: on a file Read accepts, each key's row, and no row
		// for a key it does not hold.
		for _, key := range lookupKeys(tb, data) {
			got, lerr := Lookup(root, tb, key)
			if lerr != nil {
				var e *Error
				require.ErrorAs(t, lerr, &e)
				require.Equal(t, CodeInvalid, e.Code())
				require.Error(t, err, "Lookup(%q) refused a file Read accepts: %v", key, lerr)
				continue
			}
			if err == nil {
				var want Row
				for _, r := range rows {
					if r[tb.Key] == key {
						want = r
					}
				}
				require.Equal(t, want, got, "Lookup(%q)", key)
			}
		}
		// Select of every key agrees with Read on a file Read accepts: the
		// same rows. (Like Lookup, it judges rows, not the file's shape
		// around them: a blank line or a last line without its newline is
		// Read's and the gates' to refuse.)
		all, serr := Select(root, tb, func(string) bool { return true })
		if serr != nil {
			var e *Error
			require.ErrorAs(t, serr, &e)
			require.Equal(t, CodeInvalid, e.Code())
		}
		if err == nil {
			require.NoError(t, serr, "Select refused a file Read accepts")
			require.Equal(t, append([]Row{}, rows...), all)
		}
		if err != nil {
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, CodeInvalid, e.Code())
			require.Equal(t, "registries/"+tb.File, e.File)
			require.Positive(t, e.Line)
			return
		}
		require.Equal(t, string(data), string(format(tb, rows)), "accepted bytes are the canonical encoding of their rows")
		require.NoError(t, validate(tb, rows), "Read accepted rows that Update would refuse")
		out := format(tb, sorted(tb, rows))
		again, err := parse(tb, out)
		require.NoError(t, err)
		require.Equal(t, sorted(tb, rows), again)
		require.Equal(t, string(out), string(format(tb, sorted(tb, again))), "write → read → write is byte-identical")
		for _, r := range rows {
			require.Equal(t, r, parseRow(t, tb, r))
		}
	})
}

// lookupKeys are the keys FuzzRead looks up in data: the first field of
// each line (the key column of every table but the ownership one, whose
// key, path, is first too) and one no file holds.
func lookupKeys(tb Table, data []byte) []string {
	keys := []string{"no such key"}
	for _, line := range strings.Split(string(data), "\n") {
		if k, _, _ := strings.Cut(line, ","); k != "" && len(keys) < 8 {
			keys = append(keys, strings.Trim(k, `"`))
		}
	}
	return keys
}

// FuzzSelectLines holds selectLines to selectCSV on every file it takes
// (no quote, no carriage return, no byte-order mark): for each key of
// the file, for one no file holds and for every row, the same rows or
// the same refusal, line and message.
func FuzzSelectLines(f *testing.F) {
	fx := fixtures()
	for i, tb := range All {
		f.Add(uint8(i), format(tb, fx[tb.File]))
		f.Add(uint8(i), format(tb, nil))
		f.Add(uint8(i), []byte(strings.Join(tb.Columns, ",")))
		b := format(tb, fx[tb.File])
		f.Add(uint8(i), append(append(append([]byte{}, b...), '\n'), b[bytes.IndexByte(b, '\n')+1:]...))
		f.Add(uint8(i), bytes.TrimSuffix(b, []byte("\n")))
		f.Add(uint8(i), bytes.ReplaceAll(b, []byte(","), []byte(", ")))
	}
	for _, s := range []string{"\n", "\n\npath\n", "a,b\n", "a,b,c\n\n\nd,e", ",,,\n,,,"} {
		f.Add(uint8(3), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		tb := All[int(which)%len(All)]
		if len(data) == 0 || bytes.HasPrefix(data, bom) || bytes.ContainsAny(data, "\r\"") {
			return
		}
		keeps := map[string]func(string) bool{"every row": func(string) bool { return true }}
		for _, k := range lookupKeys(tb, data) {
			keeps[k] = func(key string) bool { return key == k }
		}
		for name, keep := range keeps {
			want, werr := selectCSV(tb, data, keep)
			got, gerr := selectLines(tb, data, keep)
			if werr != nil {
				require.Error(t, gerr, "%s: selectCSV refused (%v), selectLines did not", name, werr)
				require.Equal(t, werr.Error(), gerr.Error(), name)
				require.Equal(t, werr.(*Error).Line, gerr.(*Error).Line, name)
				continue
			}
			require.NoError(t, gerr, name)
			require.Equal(t, want, got, name)
		}
	})
}

// chunked reads data a few bytes at a time, as sizes say (cycled).
type chunked struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(c.sizes) > 0 {
		n = min(n, int(c.sizes[c.i%len(c.sizes)])%64+1)
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

// FuzzSelectStream holds selectStream, read in chunks of any size into a
// buffer of any size, to selectData over the whole file: the same rows or
// the same refusal, at the same line; it leaves to selectData exactly the
// files selectLines does not read.
func FuzzSelectStream(f *testing.F) {
	fx := fixtures()
	for i, tb := range All {
		b := format(tb, fx[tb.File])
		f.Add(uint8(i), b, []byte{}, uint8(0))
		f.Add(uint8(i), b, []byte{3, 7, 1}, uint8(5))
		f.Add(uint8(i), append([]byte("\n\n"), b...), []byte{0}, uint8(1))
		f.Add(uint8(i), append(append(append([]byte{}, b...), '\n'), b[bytes.IndexByte(b, '\n')+1:]...), []byte{9}, uint8(16))
		f.Add(uint8(i), bytes.TrimSuffix(b, []byte("\n")), []byte{2}, uint8(3))
		f.Add(uint8(i), append(append([]byte{}, bom...), b...), []byte{0}, uint8(1))
		f.Add(uint8(i), bytes.Replace(b, []byte(","), []byte(`,"`), 1), []byte{1}, uint8(2))
		f.Add(uint8(i), bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), []byte{}, uint8(0))
	}
	for _, s := range []string{"", "\n", "\n\npath\n", "a,b\n", "a,b,c\n\n\nd,e", ",,,\n,,,", "\xef\xbb", "\xef\xbb\xbf"} {
		f.Add(uint8(3), []byte(s), []byte{0}, uint8(0))
	}
	f.Fuzz(func(t *testing.T, which uint8, data, sizes []byte, size uint8) {
		tb := All[int(which)%len(All)]
		keeps := map[string]func(string) bool{"every row": func(string) bool { return true }}
		for _, k := range lookupKeys(tb, data) {
			keeps[k] = func(key string) bool { return key == k }
		}
		whole := len(data) == 0 || bytes.HasPrefix(data, bom) || bytes.ContainsAny(data, "\r\"")
		for name, keep := range keeps {
			got, lines, gerr := selectStream(&chunked{data: data, sizes: sizes}, tb, keep, int(size)%32+1)
			require.Equal(t, !whole, lines, name)
			if !lines {
				continue
			}
			want, werr := selectData(tb, data, keep)
			if werr != nil {
				require.Error(t, gerr, "%s: selectData refused (%v), selectStream did not", name, werr)
				require.Equal(t, werr.Error(), gerr.Error(), name)
				require.Equal(t, werr.(*Error).Line, gerr.(*Error).Line, name)
				continue
			}
			require.NoError(t, gerr, name)
			require.Equal(t, want, got, name)
		}
	})
}
