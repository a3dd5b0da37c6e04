package pgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// copyStream encodes rows of fields in the binary COPY format (nil: NULL).
func copyStream(rows [][][]byte) []byte {
	b := append([]byte{}, copySignature...)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	for _, r := range rows {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		for _, v := range r {
			if v == nil {
				b = binary.BigEndian.AppendUint32(b, 0xffffffff)
				continue
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// readCopy parses stream written in pieces cut at cuts.
func readCopy(stream []byte, fields int, cuts []int) ([][][]byte, error) {
	var got [][][]byte
	w := &copyRows{fields: fields, row: func(vals [][]byte) error {
		r := make([][]byte, len(vals))
		for i, v := range vals {
			if v != nil {
				r[i] = append([]byte{}, v...)
			}
		}
		got = append(got, r)
		return nil
	}}
	last := 0
	for _, c := range append(cuts, len(stream)) {
		if c < last || c > len(stream) {
			continue
		}
		if _, err := w.Write(stream[last:c]); err != nil {
			return got, err
		}
		last = c
	}
	return got, w.finish()
}

func TestCopyRows(t *testing.T) {
	rows := [][][]byte{
		{binary.BigEndian.AppendUint64(nil, 0), []byte(`{"seq":0}`)},
		{binary.BigEndian.AppendUint64(nil, 1), []byte{}},
		{binary.BigEndian.AppendUint64(nil, 2), nil},
	}
	stream := copyStream(rows)
	// Whole, and cut at every place.
	got, err := readCopy(stream, 2, nil)
	require.NoError(t, err)
	require.Equal(t, rows, got)
	for c := range len(stream) {
		got, err := readCopy(stream, 2, []int{c, c + 1, c + 7})
		require.NoError(t, err, "cut at %d", c)
		require.Equal(t, rows, got, "cut at %d", c)
	}
	for name, tc := range map[string]struct {
		stream []byte
		fields int
	}{
		"signature":      {append([]byte("PGCOPY\n\377\r\n\x01"), stream[11:]...), 2},
		"flags":          {append(append(append([]byte{}, stream[:11]...), 0, 1, 0, 0), stream[15:]...), 2},
		"width":          {stream, 3},
		"no trailer":     {stream[:len(stream)-2], 2},
		"after trailer":  {append(append([]byte{}, stream...), 0, 2), 2},
		"negative field": {copyStream([][][]byte{{[]byte("x")}})[:19+2], 1},
	} {
		t.Run(name, func(t *testing.T) {
			s := tc.stream
			if name == "negative field" {
				s = binary.BigEndian.AppendUint32(s, 0xfffffff0)
			}
			_, err := readCopy(s, tc.fields, nil)
			require.Error(t, err)
		})
	}
	// A field longer than a ledger line is refused before it is buffered.
	long := binary.BigEndian.AppendUint32(append(copyStream(nil)[:19], 0, 1), ledger.MaxLine+1)
	_, err = readCopy(long, 1, nil)
	require.True(t, errors.Is(err, errCopyFormat), "%v", err)
}

// FuzzCopyRows: any bytes, cut anywhere, are rows or an error, never a
// panic; a stream the encoder wrote reads back as its rows.
func FuzzCopyRows(f *testing.F) {
	f.Add([]byte("seq"), []byte(`{"a":1}`), 5, 30)
	f.Add([]byte{}, []byte{}, 0, 0)
	f.Fuzz(func(t *testing.T, a, b []byte, c1, c2 int) {
		rows := [][][]byte{{a, b}, {b, nil}, {nil, a}}
		stream := copyStream(rows)
		got, err := readCopy(stream, 2, []int{c1, c2})
		require.NoError(t, err)
		require.Equal(t, len(rows), len(got))
		for i := range rows {
			for j := range rows[i] {
				require.Equal(t, rows[i][j] == nil, got[i][j] == nil)
				require.Equal(t, string(rows[i][j]), string(got[i][j]))
			}
		}
		// Arbitrary bytes: whatever the parser makes of them, no panic.
		readCopy(append(append([]byte{}, stream[:19]...), a...), 2, []int{c1})
		readCopy(a, 1, []int{c2})
	})
}

// TestLinesPages: Lines reads in COPYs of growing pages; a caller that
// stops early leaves the connection usable; a range is a range.
func TestLinesPages(t *testing.T) {
	defer func(a, b int64) { linesPage, maxLinesPage = a, b }(linesPage, maxLinesPage)
	linesPage, maxLinesPage = 3, 8
	dsn := pgtest.DB(t)
	s := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	for i := range 40 {
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: fmt.Sprint("S-", i)}})
		require.NoError(t, err)
	}
	seqs := func(from, to int64, stop int) (out []int64) {
		require.NoError(t, s.Lines(ctx, from, to, func(seq int64, line []byte) bool {
			e, err := ledger.ParseLine(line)
			require.NoError(t, err)
			require.Equal(t, seq, e.Seq)
			out = append(out, seq)
			return len(out) != stop
		}))
		return out
	}
	require.Len(t, seqs(0, -1, -1), 40)
	require.Equal(t, []int64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, seqs(5, 16, -1))
	require.Equal(t, []int64{2, 3, 4, 5}, seqs(2, -1, 4))
	require.Equal(t, []int64{39}, seqs(39, 100, -1))
	require.Empty(t, seqs(40, -1, -1))
	st, err := s.State(ctx) // the connection after an early stop
	require.NoError(t, err)
	require.EqualValues(t, 40, st.Size)
	// The planner settings of a COPY end with it.
	var sorts, bitmaps string
	require.NoError(t, s.conn.QueryRow(ctx, `SELECT current_setting('enable_sort'), current_setting('enable_bitmapscan')`).Scan(&sorts, &bitmaps))
	require.Equal(t, []string{"on", "on"}, []string{sorts, bitmaps})
	rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
}

// TestReadStoredHashes: the stored hashes read whole are the ones read
// one by one; one deleted, or one of another length, is refused, named.
func TestReadStoredHashes(t *testing.T) {
	dsn := pgtest.DB(t)
	k, _ := storetest.Key(t, "hashes/ho3/governance")
	s := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, filepath.Join(t.TempDir(), "c"))
	other := open(t, dsn, "other", ledger.Options{Actor: "tester"}, "")
	for i := range 21 {
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: fmt.Sprint("S-", i)}})
		require.NoError(t, err)
		_, err = other.Append(ctx, []ledger.Draft{{EventType: "EV"}})
		require.NoError(t, err)
	}
	n := tlog.StoredHashCount(21)
	b, err := s.ReadStoredHashes(ctx, n)
	require.NoError(t, err)
	require.Len(t, b, int(n)*tlog.HashSize)
	for i := range n {
		h, err := s.ReadHashes([]int64{i})
		require.NoError(t, err)
		require.Equal(t, h[0][:], b[i*tlog.HashSize:(i+1)*tlog.HashSize], "stored hash %d", i)
	}
	b, err = s.ReadStoredHashes(ctx, 5)
	require.NoError(t, err)
	require.Len(t, b, 5*tlog.HashSize)

	sql(t, dsn, `DELETE FROM cp_hashes WHERE ledger = 'governance' AND idx = 7`)
	_, err = s.ReadStoredHashes(ctx, n)
	storetest.RequireCode(t, err, ledger.TornTail)
	require.ErrorContains(t, err, "stored hash 7 missing")
	_, err = ledger.Verify(ctx, s, ledger.VerifyOptions{})
	storetest.RequireCode(t, err, ledger.TornTail)

	sql(t, dsn, `ALTER TABLE cp_hashes DROP CONSTRAINT cp_hashes_hash_check`)
	sql(t, dsn, `INSERT INTO cp_hashes (ledger, idx, hash) VALUES ('governance', 7, '\x00')`)
	_, err = s.ReadStoredHashes(ctx, n)
	storetest.RequireCode(t, err, "LEDGER_INVALID")
}

// TestImportVacuums: an import leaves the tables it filled vacuumed and
// analyzed, so that the first read sets no hint bits.
func TestImportVacuums(t *testing.T) {
	dir := t.TempDir()
	f := fileLedger(t, filepath.Join(dir, "governance.jsonl"), 50, nil)
	dsn := pgtest.DB(t)
	s := open(t, dsn, "governance", ledger.Options{Actor: "importer"}, "")
	_, err := s.Import(ctx, f)
	require.NoError(t, err)
	for _, table := range []string{"cp_entries", "cp_hashes"} {
		var vacuumed, analyzed bool
		require.NoError(t, s.conn.QueryRow(ctx, `SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&vacuumed, &analyzed))
		require.True(t, vacuumed && analyzed, "%s: vacuumed %v, analyzed %v", table, vacuumed, analyzed)
	}
}
