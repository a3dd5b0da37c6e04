package ledgercmd

import (
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
)

// checkSession refuses a session id that is not one.
func checkSession(id string) error {
	if !plane.ValidSessionID(id) {
		return cli.Invalidf("INVALID_INPUT", "--session %q is not a session id (SES-YYYYMMDD-<8 hex digits>)", id)
	}
	return nil
}

// scope is what a cp-ledger request acts on, for the firewall (cli.Verb's
// Scope): the plane, tier and session of the ledger it names. A ledger
// named by path is judged by where the file really is: a path into a
// plane, through symbolic links or not, acts on the tier whose directory
// holds it (an HO3 ledger named as ledger/governance.jsonl is HO3's, a file
// under planes/ho1/sessions/S/ is session S's); a path outside every plane
// acts on none.
//
// A path's scope is found once per run (a stream names the same file
// line after line): w keeps it.
func (w *writers) scope(c *cli.Call, req cli.Request) (root, tier, session string, err error) {
	if p := req.String("ledger"); p != "" {
		w.mu.Lock()
		sc, ok := w.scopes[p]
		w.mu.Unlock()
		if ok {
			return sc[0], sc[1], sc[2], nil
		}
		if root, tier, session, err = cli.PathScope(p); err != nil {
			return "", "", "", err
		}
		w.mu.Lock()
		if w.scopes == nil {
			w.scopes = map[string][3]string{}
		}
		w.scopes[p] = [3]string{root, tier, session}
		w.mu.Unlock()
		return root, tier, session, nil
	}
	session = req.String("session_id")
	if session != "" {
		if err := checkSession(session); err != nil {
			return "", "", "", err
		}
	}
	if root, err = c.Root(); err != nil {
		if session != "" || req.Has("plane") {
			return "", "", "", err
		}
		// No plane: the verb acts on none (a proof piped to verify), or
		// meets this error itself.
		return "", "", "", nil
	}
	tier = req.String("plane")
	switch {
	case tier == "" && session != "":
		tier = "ho1"
	case tier == "":
		tier = c.RootPlane()
	}
	return root, tier, session, nil
}
