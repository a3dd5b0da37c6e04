// Command anchorstep is a work-order step as the anchor benchmark measures
// it: one entry appended to HO2's ledger of the plane at $CONTROL_PLANE
// and, with -anchor, the anchors every cp-wo step writes around its entry
// (plane.AnchorChain before it acts and after its entry). The two runs
// differ only by the anchoring.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// stepEvent is the benchmark's own entry, an event type any caller may
// append (not a tool's: the catalogue does not reserve it).
const stepEvent = "BENCH_STEP"

func main() {
	anchor := flag.Bool("anchor", false, "anchor the lower tiers before and after the entry")
	session := flag.String("session", "", "also anchor this HO1 session's ledger")
	flag.Parse()
	if err := run(os.Getenv("CONTROL_PLANE"), *anchor, *session); err != nil {
		fmt.Fprintln(os.Stderr, "anchorstep:", err)
		os.Exit(1)
	}
}

func run(root string, anchor bool, session string) error {
	ctx := context.Background()
	actor := plane.Actor{Name: "bench"}
	const wo = "WO-20261206-001"
	if anchor {
		if _, err := plane.AnchorChain(ctx, root, actor, wo, session); err != nil {
			return err
		}
	}
	l, _, err := plane.OpenLedger(filepath.Join(root, "planes", "ho2"), plane.ForAppend, actor)
	if err != nil {
		return err
	}
	_, err = l.Append(ctx, []ledger.Draft{{EventType: stepEvent, SubmissionID: wo, Decision: "OK", Metadata: map[string]any{"_tier": "HO2"}}})
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil || !anchor {
		return err
	}
	_, err = plane.AnchorChain(ctx, root, actor, wo, session)
	return err
}
