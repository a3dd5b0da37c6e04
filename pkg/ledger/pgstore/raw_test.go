package pgstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// rawConn connects to dsn with pgconn alone, as a reader does.
func rawConn(t testing.TB, dsn string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	pc, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// roundTrip sends texts and bigints as parameters in the binary format
// and reads them back, element by element, as the server decoded them.
func roundTrip(t testing.TB, pc *pgconn.PgConn, ss []string, ns []int64) ([]string, []int64) {
	t.Helper()
	var gotS []string
	var gotN []int64
	a := new(args).texts(ss).bigints(ns).text("x").bigint(-7)
	require.NoError(t, each(ctx, pc, `SELECT 0::bigint, s, NULL::bigint FROM unnest($1::text[]) WITH ORDINALITY AS u(s, o)
		UNION ALL SELECT 1, NULL, n FROM unnest($2::bigint[]) WITH ORDINALITY AS u(n, o)
		UNION ALL SELECT 2, $3, $4`, a, func(vals [][]byte) error {
		k, err := int8Of("k", vals[0])
		if err != nil {
			return err
		}
		switch k {
		case 0:
			gotS = append(gotS, string(vals[1]))
		case 1:
			n, err := int8Of("n", vals[2])
			gotN = append(gotN, n)
			return err
		default:
			n, err := int8Of("n", vals[2])
			require.NoError(t, err)
			require.Equal(t, "x", string(vals[1]))
			require.EqualValues(t, -7, n)
		}
		return nil
	}))
	return gotS, gotN
}

// TestBinaryArgs: the parameters a reader sends in the binary format are
// what the server reads, whatever the strings hold (quotes, braces,
// commas, backslashes, NULL's spelling, multi-byte runes, the empty
// string) and whatever the numbers; empty arrays are empty.
func TestBinaryArgs(t *testing.T) {
	pc := rawConn(t, pgtest.DB(t))
	ss := []string{"", "a", `"quoted"`, `{x,y}`, `back\slash`, "NULL", "tab\tnl\n", "ünï€😀", "a,b"}
	ns := []int64{0, 1, -1, 1 << 62, -1 << 63, 1<<63 - 1}
	gotS, gotN := roundTrip(t, pc, ss, ns)
	require.Equal(t, ss, gotS)
	require.Equal(t, ns, gotN)
	gotS, gotN = roundTrip(t, pc, nil, nil)
	require.Empty(t, gotS)
	require.Empty(t, gotN)
}

// TestRawRows: a column of another type than a statement reads is an
// error, never a zero; an error of fn ends the statement and is returned,
// and the connection is usable after either.
func TestRawRows(t *testing.T) {
	pc := rawConn(t, pgtest.DB(t))
	for _, q := range []string{`SELECT 1::int4`, `SELECT NULL::bigint`, `SELECT 'x'::text`} {
		err := each(ctx, pc, q, nil, func(vals [][]byte) error { _, err := int8Of("c", vals[0]); return err })
		require.ErrorIs(t, err, errRowFormat, q)
	}
	stop := errors.New("stop")
	rows := 0
	err := each(ctx, pc, `SELECT generate_series(1, 1000)::bigint`, nil, func([][]byte) error { rows++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, rows, "fn is not called after its error")
	err = each(ctx, pc, `SELECT 1/0`, nil, func([][]byte) error { return nil })
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	var n int64
	require.NoError(t, each(ctx, pc, `SELECT $1::bigint + 1`, new(args).bigint(41), func(vals [][]byte) error {
		var err error
		n, err = int8Of("n", vals[0])
		return err
	}))
	require.EqualValues(t, 42, n)
}

// TestReaderWritesNothing: a store opened to read without a checkpoint
// key holds no pgx connection, and refuses to write; with a key it signs
// checkpoints, as cp-ledger checkpoint does.
func TestReaderWritesNothing(t *testing.T) {
	dsn := pgtest.DB(t)
	k, _ := storetest.Key(t, "reader/ho3/governance")
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV"}})
	require.NoError(t, err)
	r, err := Open(ctx, dsn, Options{Name: "governance"})
	require.NoError(t, err)
	defer r.Close()
	require.Nil(t, r.conn, "a reader builds no pgx.Conn (nor its type map)")
	_, _, err = r.Checkpoint(ctx, "reader/ho3/governance")
	storetest.RequireCode(t, err, "INTERNAL")
	st, err := r.State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Size)
	c, err := Open(ctx, dsn, Options{Name: "governance", Ledger: ledger.Options{Checkpoint: k}})
	require.NoError(t, err)
	defer c.Close()
	ck, _, err := c.Checkpoint(ctx, "reader/ho3/governance")
	require.NoError(t, err)
	require.Equal(t, st.Root, ck.Root)
}

// FuzzBinaryArgs: any valid text (PostgreSQL's text holds no NUL) and
// any number go to the server and back unchanged.
func FuzzBinaryArgs(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "{}", "NULL", "ü", " , "} {
		f.Add(s, int64(len(s)))
	}
	pc := rawConn(f, pgtest.DB(f))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if !utf8.ValidString(s) || slices.Contains([]byte(s), 0) {
			t.Skip()
		}
		gotS, gotN := roundTrip(t, pc, []string{s, s + "x"}, []int64{n, -n})
		require.Equal(t, []string{s, s + "x"}, gotS)
		require.Equal(t, []int64{n, -n}, gotN)
	})
}
