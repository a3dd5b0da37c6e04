package workorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
)

// LockTimeout is how long a work-order step waits for another one on the
// same plane.
const LockTimeout = 30 * time.Second

// Options are what every work-order step needs from its caller.
type Options struct {
	// Actor is who acts: created_by, the approver, the actor stamped on
	// the entries written.
	Actor plane.Actor
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now().UTC()
	}
	return o.Now().UTC()
}

// lock takes the plane's work-order lock (work_orders/.lock), making the
// work_orders directory if need be: every step that writes a work-order
// file or entry holds it, so that ids are allocated once and a state is
// judged and changed as one step.
func lock(ctx context.Context, root string) (unlock func(), err error) {
	dir := filepath.Join(root, Dir)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err := checkDir(root); err != nil {
		return nil, err
	}
	f, err := lockfile.Open(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	if err := lockfile.Lock(ctx, f, true, LockTimeout); err != nil {
		f.Close()
		return nil, err
	}
	return func() { lockfile.Unlock(f); f.Close() }, nil
}

// recordHO2 appends d to HO2's ledger, stamped with its tier like
// plane.Record's HO3 entries.
func recordHO2(ctx context.Context, root string, actor plane.Actor, d ledger.Draft) (ledger.Entry, error) {
	l, t, err := plane.OpenLedger(ho2Dir(root), plane.ForAppend, actor)
	if err != nil {
		return ledger.Entry{}, err
	}
	defer l.Close()
	if d.Metadata == nil {
		d.Metadata = map[string]any{}
	}
	d.Metadata["_tier"] = t.Tier
	es, err := l.Append(ctx, []ledger.Draft{d})
	if err != nil {
		return ledger.Entry{}, err
	}
	return es[len(es)-1], nil
}

// checkHO2 reports whether HO2's ledger can be appended to now, appending
// nothing (plane.CheckRecord for HO2).
func checkHO2(ctx context.Context, root string, actor plane.Actor) error {
	l, _, err := plane.OpenLedger(ho2Dir(root), plane.ForAppend, actor)
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = l.Append(ctx, nil)
	return err
}

// Created is what Create made.
type Created struct {
	WorkOrder   *WorkOrder   `json:"work_order"`
	PayloadHash string       `json:"payload_hash"`
	Path        string       `json:"path"`
	Entry       ledger.Entry `json:"-"`
}

// Create makes work order d for opts.Actor: it allocates the day's next
// id under the plane's work-order lock, writes work_orders/<id>.json once
// (canonical JSON, 0444, never replacing a file) and records WO_CREATED in
// HO2 (wo_id, payload_hash, created_by, type, tier, expires_at and a
// summary of the scope). A draft that breaks a rule is WO_INVALID (or
// WO_EXPIRED) before anything is written.
func Create(ctx context.Context, root string, d Draft, opts Options) (*Created, error) {
	now := opts.now()
	w := d.workOrder("WO-"+now.Format("20060102")+"-001", opts.Actor.Name, now)
	if err := w.Check(now); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := checkHO2(ctx, root, opts.Actor); err != nil {
		return nil, err
	}
	if err := anchorBefore(ctx, root, opts, ""); err != nil {
		return nil, err
	}
	if w.ID, err = nextID(root, now); err != nil {
		return nil, err
	}
	b, err := w.Canonical()
	if err != nil {
		return nil, err
	}
	// What is written is what Read will return (numbers in canonical
	// form): read back with the reader's rules before it is written.
	if w, _, err = Parse(b); err != nil {
		return nil, err
	}
	rel := FilePath(w.ID)
	if err := atomicfile.Publish(filepath.Join(root, filepath.FromSlash(rel)), append(b, '\n'), 0o444); err != nil {
		return nil, err
	}
	h := PayloadHash(b)
	e, err := recordHO2(ctx, root, opts.Actor, ledger.Draft{EventType: EventCreated, SubmissionID: w.ID, Decision: "CREATED",
		Reason: fmt.Sprintf("%s: %s", w.Type, w.Title),
		Metadata: map[string]any{"wo_id": w.ID, "payload_hash": h, "created_by": w.CreatedBy, "type": w.Type, "tier": w.Tier,
			"expires_at": w.ExpiresAt, "path": rel, "scope": map[string]any{"paths": len(w.Scope.Paths), "packages": len(w.Scope.Packages),
				"prompt_packs": len(w.Scope.PromptPacks), "event_types": len(w.Scope.EventTypes)}}})
	if err != nil {
		// The file stays: without WO_CREATED it is no work order (State
		// answers WO_NOT_FOUND), and its id is never given again.
		return nil, err
	}
	if err := anchorAfter(ctx, root, opts, w.ID, e); err != nil {
		return nil, err
	}
	return &Created{WorkOrder: w, PayloadHash: h, Path: rel, Entry: e}, nil
}

// workOrder is the work order d makes, created by createdBy at now.
func (d Draft) workOrder(id, createdBy string, now time.Time) *WorkOrder {
	w := &WorkOrder{ID: id, Type: d.Type, Title: d.Title, Description: d.Description, Tier: d.Tier, Scope: d.Scope,
		Budget: d.Budget, ExpiresAt: d.ExpiresAt, CreatedBy: createdBy, CreatedAt: now.UTC().Truncate(time.Second).Format(time.RFC3339)}
	if w.Scope.Paths == nil {
		w.Scope.Paths = []string{}
	}
	return w
}

// CheckDraft holds d to the rules Create holds it to, for createdBy at
// now, writing nothing (cp-wo validate --file).
func CheckDraft(d Draft, createdBy string, now time.Time) error {
	if createdBy == "" {
		createdBy = "?"
	}
	return d.workOrder("WO-"+now.UTC().Format("20060102")+"-001", createdBy, now).Check(now)
}

// ParseDraft reads a draft document strictly: a JSON object of Draft's
// fields and no other (WO_INVALID otherwise). Its rules are checked by
// CheckDraft or Create.
func ParseDraft(b []byte) (Draft, error) {
	var d Draft
	if _, err := jcs.Decode(b); err != nil { // duplicate keys, bad numbers
		return d, refuse(CodeInvalid, nil, "not valid JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, refuse(CodeInvalid, nil, "work-order draft: %v", err)
	}
	return d, nil
}

// nextID returns the next free id of now's day: one more than the highest
// NNN of that day among the files of work_orders/ (files are never
// removed, so an id is never given twice). Called under the lock.
func nextID(root string, now time.Time) (string, error) {
	day := now.Format("20060102")
	prefix := "WO-" + day + "-"
	ents, err := os.ReadDir(filepath.Join(root, Dir))
	if err != nil {
		return "", err
	}
	top := 0
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || len(name) < 3 {
			continue
		}
		if n, err := strconv.Atoi(name[:3]); err == nil && n > top {
			top = n
		}
	}
	if top >= 999 {
		return "", refuse(CodeIDsExhausted, map[string]any{"day": day}, "999 work orders were created on %s already", day)
	}
	return fmt.Sprintf("%s%03d", prefix, top+1), nil
}
