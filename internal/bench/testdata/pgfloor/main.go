// Command pgfloor connects to the PostgreSQL server named by
// $CONTROL_PLANE_LEDGER_DSN with pgx, runs SELECT 1 and exits: the floor
// of any process that asks the database one question, which a
// `cp-ledger prove` against a ledger in PostgreSQL is measured against
// (BenchmarkProve1MPostgresOverFile). `pgfloor pgconn` does the same
// with pgx's wire-protocol layer alone (pgconn, as a pgstore reader
// connects): without pgx.Conn's type map, built when it connects.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	ctx := context.Background()
	dsn := os.Getenv("CONTROL_PLANE_LEDGER_DSN")
	if len(os.Args) > 1 && os.Args[1] == "pgconn" {
		pc, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			fail(err)
		}
		rs, err := pc.Exec(ctx, "SELECT 1").ReadAll()
		if err != nil || len(rs) != 1 || len(rs[0].Rows) != 1 || string(rs[0].Rows[0][0]) != "1" {
			fail(err)
		}
		pc.Close(ctx)
		return
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		fail(err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeExec).Scan(&one); err != nil || one != 1 {
		fail(err)
	}
	conn.Close(ctx)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pgfloor:", err)
	os.Exit(4)
}
