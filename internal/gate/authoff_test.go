package gate_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
)

// TestG6WarnsOfAuthOffAfterInit: entries stamped _auth "off" before auth
// was initialized are a plane without auth; after the TRUST_CHANGED that
// trusted a key for purpose auth, each one is a bypass, and G6 warns of it
// by ledger and seq, never failing.
func TestG6WarnsOfAuthOffAfterInit(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	owner := plane.Actor{Name: "owner", AuthOff: true}
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: owner})
	require.NoError(t, err)
	ho1 := filepath.Join(root, "planes", "ho1")
	appendTo := func(dir string, a plane.Actor, event string) ledger.Entry {
		l, _, err := plane.OpenLedger(dir, plane.ForAppend, a)
		require.NoError(t, err)
		defer l.Close()
		es, err := l.Append(ctx, []ledger.Draft{{EventType: event}})
		require.NoError(t, err)
		return es[0]
	}
	appendTo(ho1, owner, "BEFORE")
	r, err := gate.G6(ctx, root)
	require.NoError(t, err)
	require.True(t, r.Passed, "%+v", r.Errors)
	require.Empty(t, r.Warnings, "no auth yet: nothing is a bypass")

	_, vkey, err := keys.Generate("auth")
	require.NoError(t, err)
	tr, err := install.Trust(ctx, root, install.TrustOptions{Add: true, Key: vkey, Purposes: []string{"auth"}, Actor: owner})
	require.NoError(t, err)
	// cp-auth init's first token carries the trust change's op_id; a
	// refusal the tool recorded of a caller it could not admit is stamped
	// off too (no token was verified) but is no bypass.
	_, err = plane.Record(ctx, root, owner, ledger.Draft{EventType: "TOKEN_ISSUED", Metadata: map[string]any{"op_id": tr.Kernel.OpID}})
	require.NoError(t, err)
	_, err = plane.Record(ctx, root, plane.Actor{Name: "unauthenticated", AuthOff: true}, ledger.Draft{EventType: "AUTHZ_DENIED"})
	require.NoError(t, err)
	after := appendTo(ho1, owner, "AFTER")
	appendTo(ho1, plane.Actor{Name: "worker-1"}, "WITH_TOKEN")
	// The firewall's refusal of a caller it never admitted is stamped off
	// too (no verified token wrote it), but it is no bypass.
	appendTo(root, plane.Actor{Name: "unauthenticated", AuthOff: true}, "AUTHZ_DENIED")
	r, err = gate.G6(ctx, root)
	require.NoError(t, err)
	require.True(t, r.Passed, "a warning, never a failure: %+v", r.Errors)
	var got []string
	for _, w := range r.Warnings {
		require.Equal(t, "AUTH_OFF", w.Code)
		got = append(got, w.Path+" "+w.Message)
	}
	// The trust change's own entries (its operation, on every tier) are
	// the init, not a bypass.
	found := false
	for _, g := range got {
		if strings.HasPrefix(g, "planes/ho1/ledger/worker.jsonl seq ") && strings.Contains(g, "AFTER") {
			found = true
			require.Contains(t, g, "seq "+strconv.FormatInt(after.Seq, 10))
		}
		require.NotContains(t, g, "BEFORE")
		require.NotContains(t, g, "WITH_TOKEN")
		require.NotContains(t, g, "TRUST_CHANGED")
		require.NotContains(t, g, "INSTALL")
		require.NotContains(t, g, "TOKEN_ISSUED")
		require.NotContains(t, g, "AUTHZ_DENIED")
	}
	require.True(t, found, "%v", got)
	require.Len(t, got, 1, "only the bypass: %v", got)
}
