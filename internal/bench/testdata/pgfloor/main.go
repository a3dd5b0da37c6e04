// Command pgfloor connects to the PostgreSQL server named by
// $CONTROL_PLANE_LEDGER_DSN with pgx, runs SELECT 1 and exits: the floor
// of any process that asks the database one question, which a
// `cp-ledger prove` against a ledger in PostgreSQL is measured against
// (BenchmarkProve1MPostgresOverFile).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("CONTROL_PLANE_LEDGER_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgfloor:", err)
		os.Exit(4)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeExec).Scan(&one); err != nil || one != 1 {
		fmt.Fprintln(os.Stderr, "pgfloor:", err)
		os.Exit(4)
	}
	conn.Close(ctx)
}
