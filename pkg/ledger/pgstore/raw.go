package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A reader's statements go through pgconn, pgx's wire-protocol layer,
// with their parameters and results in PostgreSQL's binary format,
// encoded and decoded here: a cp-ledger prove process connects, asks one
// statement and exits, and pgx.Conn's type map (pgtype.NewMap at each
// connect, whose first call in a process builds pgx's default map: ~0.25-0.5
// ms of CPU, a registry of some hundred types and the Go types that map
// to them) would be most of its work. The types
// these statements use are four: bigint, bytea, text and arrays of
// bigint and text. A writer (pgx.Conn: transactions, COPY FROM) runs its
// reads the same way, on its connection's PgConn.

// Type OIDs of the parameters sent (pg_type.oid, fixed by PostgreSQL).
const (
	oidInt8      = 20
	oidText      = 25
	oidTextArray = 1009
	oidInt8Array = 1016
)

// args are a statement's parameters, each in the binary format.
type args struct {
	vals [][]byte
	oids []uint32
}

func (a *args) add(oid uint32, v []byte) *args {
	a.vals, a.oids = append(a.vals, v), append(a.oids, oid)
	return a
}

func (a *args) text(s string) *args { return a.add(oidText, []byte(s)) }

func (a *args) bigint(n int64) *args {
	return a.add(oidInt8, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// bigints adds a one-dimensional bigint[] (array_send's format: dimensions,
// a null flag, the element type, then each dimension's length and lower
// bound, then each element's length and bytes).
func (a *args) bigints(ns []int64) *args {
	b := arrayHeader(len(ns), oidInt8)
	for _, n := range ns {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return a.add(oidInt8Array, b)
}

// texts adds a one-dimensional text[].
func (a *args) texts(ss []string) *args {
	b := arrayHeader(len(ss), oidText)
	for _, s := range ss {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return a.add(oidTextArray, b)
}

func arrayHeader(n int, elem uint32) []byte {
	b := make([]byte, 0, 20+12*n)
	if n == 0 { // no dimensions: '{}'
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 0)
		return binary.BigEndian.AppendUint32(b, elem)
	}
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // no NULL element
	b = binary.BigEndian.AppendUint32(b, elem)
	b = binary.BigEndian.AppendUint32(b, uint32(n)) // length
	return binary.BigEndian.AppendUint32(b, 1)      // lower bound
}

// binaryFormat asks for every parameter, and every result column, in the
// binary format.
var binaryFormat = []int16{1}

// each runs sql on pc as one unnamed statement (parse, bind, execute in
// one round trip, planned for its values: oneTrip's way) and calls fn
// with each row's values, in the binary format: nil for NULL, else valid
// only during the call. pc must be idle (or in a transaction), and is
// again when each returns.
func each(ctx context.Context, pc *pgconn.PgConn, sql string, a *args, fn func(vals [][]byte) error) error {
	if testTracer != nil {
		ctx = testTracer.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: sql})
	}
	if a == nil {
		a = &args{}
	}
	rr := pc.ExecParams(ctx, sql, a.vals, a.oids, binaryFormat, binaryFormat)
	var ferr error
	for rr.NextRow() {
		if ferr == nil {
			ferr = fn(rr.Values())
		}
	}
	_, err := rr.Close()
	if ferr != nil {
		return ferr
	}
	return err
}

// int8Of decodes a bigint column in the binary format: 8 bytes, big
// endian. Anything else (NULL, another width: a column of another type)
// is an error, never a zero.
func int8Of(col string, b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: column %s is %d bytes, not a bigint's 8", errRowFormat, col, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// errRowFormat is a row whose column is not of the type a statement
// selects: a schema this tool does not know.
var errRowFormat = fmt.Errorf("a row not of the expected types")
