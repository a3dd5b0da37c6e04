package xcmd

import (
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/pkg/lib"
)

var tool = &cli.Tool{Name: "cp-x", Verbs: []*cli.Verb{
	{Name: "run", Run: run},
	{Name: "check-all", Run: func() error { gate.G1(); return lib.Parse("") }},
	{Name: "scoped", Run: factory(1), Scope: scope},
}}

var other = &cli.Verb{Name: "other", Run: other_}

type appender interface{ Append() error }

func run() error { return cli.Errorf(1, "X_REFUSED", "x") }

func factory(n int) func() error {
	return func() error { return lib.Lock() }
}

func scope() error { return cli.Errorf(2, "X_SCOPE", "x") }

func other_() error {
	var a appender
	gate.G2()
	return a.Append()
}

func builtCode(kind string) error { return cli.Errorf(1, "X_"+kind, "x") }

func Main() { _ = tool; _ = other }
