package wocmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
)

// defaultWorkerTTL is a minted worker token's lifetime without --ttl.
const defaultWorkerTTL = time.Hour

// mintAlso is start's second action: --mint-token mints a token, which
// only a caller allowed to mint tokens (admin, with HO3) may ask for.
func mintAlso(req cli.Request) (cli.Action, string) {
	if b, _ := req["mint_token"].(bool); b {
		return cli.ActionToken, cli.TierHO3
	}
	return "", ""
}

// turnScope is what a turn acts on: the HO1 session it names (or its
// token's), so that a worker's token serves its own session only.
func turnScope(c *cli.Call, req cli.Request) (root, tier, session string, err error) {
	root, err = c.Root()
	if err != nil {
		return "", "", "", err
	}
	return root, "ho1", req.String("session_id"), nil
}

// StartResult is start's answer: the session, and the worker's token when
// one was minted (it is in this answer only: never in a ledger or a log).
type StartResult struct {
	*workorder.Started
	Token          string `json:"token,omitempty"`
	TokenJTI       string `json:"token_jti,omitempty"`
	TokenExpiresAt string `json:"token_expires_at,omitempty"`
	Seq            int64  `json:"seq"`
}

func start(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	id := req.String("work_order_id")
	mint, _ := req["mint_token"].(bool)
	if !mint && (req.Has("ttl") || req.Has("sub") || req.Has("key")) {
		return cli.Outcome{Err: cli.Usagef("start: --ttl, --sub and --key are for --mint-token")}
	}
	var mintFor func(sid string) (string, auth.Claims, error)
	if mint {
		if mintFor, err = minter(c, req, root, id); err != nil {
			return cli.Outcome{Err: err}
		}
	}
	s, err := workorder.Start(ctx, root, id, engine(c))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r := &StartResult{Started: s, Seq: s.Entry.Seq}
	if mintFor != nil {
		tok, cl, err := mintFor(s.SessionID)
		if err != nil {
			return cli.Outcome{Err: cli.AsError(err).WithHint("session %s is open (WO_STARTED, HO2 seq %d): mint its token with cp-auth token --role worker --tiers ho1 --wo %s --session %s",
				s.SessionID, s.Entry.Seq, id, s.SessionID)}
		}
		r.Token, r.TokenJTI = tok, cl.ID
		r.TokenExpiresAt = time.Unix(cl.ExpiresAt, 0).UTC().Format(time.RFC3339)
	}
	return cli.Outcome{Result: r, LedgerEntryID: s.Entry.ID, Seq: s.Entry.Seq}
}

// minter checks, before anything is written, that a worker token can be
// minted (the key loads and the plane trusts it for auth), and returns
// the function that mints it for a session, through auth.Issue like
// cp-auth token (TOKEN_ISSUED recorded, never the token).
func minter(c *cli.Call, req cli.Request, root, id string) (func(sid string) (string, auth.Claims, error), error) {
	t, err := plane.ReadTier(root)
	if err != nil {
		return nil, err
	}
	if t.PlaneName == "" {
		return nil, cli.Errorf(cli.ExitDenied, "PLANE_NAME_MISSING", "the plane at %s has no plane_name: tokens are bound to one", root)
	}
	if err := plane.KeyRoot(t.PlaneName, root); err != nil {
		return nil, err
	}
	ttl := defaultWorkerTTL
	if s := req.String("ttl"); s != "" {
		if ttl, err = time.ParseDuration(s); err != nil || ttl <= 0 {
			return nil, cli.Usagef("--ttl %q: want a positive duration (90m, 1h)", s)
		}
	}
	keyPath := req.String("key")
	if keyPath == "" {
		if keyPath, err = auth.DefaultKeyPath(t.PlaneName); err != nil {
			return nil, err
		}
	}
	priv, err := auth.Issuer(root, keyPath)
	if err != nil {
		return nil, cli.AsError(err).WithHint("run cp-auth init first, or give --key, a key trusted for auth")
	}
	return func(sid string) (string, auth.Claims, error) {
		sub := req.String("sub")
		if sub == "" {
			sub = "worker-" + sid
		}
		now := time.Now()
		cl := auth.Claims{Subject: sub, Role: auth.RoleWorker, Tiers: []string{"ho1"}, Audience: t.PlaneName,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), ID: auth.NewID(), WorkOrder: id, Session: sid}
		tok, _, err := auth.Issue(context.Background(), root, c.Actor(), priv, cl, "")
		return tok, cl, err
	}, nil
}

func startText(w io.Writer, result any) error {
	r := result.(*StartResult)
	fmt.Fprintf(w, "started %s: session %s (WO_STARTED, HO2 seq %d)\nledger %s, GENESIS seq %d\n", r.ID, r.SessionID, r.Seq, r.Ledger, r.GenesisSeq)
	if r.Token != "" {
		_, err := fmt.Fprintf(w, "worker token (valid until %s):\n%s\n", r.TokenExpiresAt, r.Token)
		return err
	}
	return nil
}

func turn(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	sid := req.String("session_id")
	if sid == "" {
		return cli.Outcome{Err: cli.Usagef("turn: name the session (--session SES-..., or a worker token's session claim)")}
	}
	hdr := map[string]any{}
	for k, v := range req {
		if k != "session_id" {
			hdr[k] = v
		}
	}
	// The request path held the request to cp-wo.turn.request.json,
	// whose fields are turn_header.schema.json's: taken as they are, not
	// validated again.
	h, err := workorder.HeaderOf(hdr)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r, err := workorder.Turn(ctx, root, sid, h, engine(c))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: r, LedgerEntryID: r.Entry.ID, Seq: r.Seq}
}

func turnText(w io.Writer, result any) error {
	r := result.(*workorder.TurnResult)
	_, err := fmt.Fprintf(w, "turn %d of %s in session %s recorded (TURN, seq %d): %d inputs checked, %d of %d turns used\n",
		r.TurnNumber, r.ID, r.SessionID, r.Seq, r.InputsChecked, r.TurnsUsed, r.TurnsBudget)
	return err
}

func complete(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r, err := workorder.Complete(ctx, root, req.String("work_order_id"), req.String("result_sha256"), engine(c))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if r.NoOp {
		c.Logf("work order %s was already completed (HO2 seq %d): nothing written", r.ID, r.Seq)
		return cli.Outcome{Result: r}
	}
	return cli.Outcome{Result: r, LedgerEntryID: r.Entry.ID, Seq: r.Seq}
}

func completeText(w io.Writer, result any) error {
	r := result.(*workorder.Completed)
	if r.NoOp {
		_, err := fmt.Fprintf(w, "%s was already completed (WO_COMPLETED, HO2 seq %d): no-op, nothing written\n", r.ID, r.Seq)
		return err
	}
	_, err := fmt.Fprintf(w, "completed %s (WO_COMPLETED, HO2 seq %d): %d turns in %d sessions\n", r.ID, r.Seq, r.Turns, r.Sessions)
	return err
}
