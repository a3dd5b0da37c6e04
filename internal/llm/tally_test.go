package llm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/pkg/ledger"
)

// tallyTestKey is the tests' MAC key of the tally (a plane's is derived
// from its checkpoint key: plane.MACKey).
var tallyTestKey = []byte("0123456789abcdef0123456789abcdef")

// sealed is v as a tally file authenticated with key: what writeTally
// writes, for a tally the tests make by hand.
func sealed(t testing.TB, key []byte, v any) []byte {
	t.Helper()
	tb, err := json.Marshal(v)
	require.NoError(t, err)
	b, err := json.Marshal(tallyEnvelope{MAC: hex.EncodeToString(tallyMAC(key, tb)), Tally: tb})
	require.NoError(t, err)
	return b
}

// tallyLedger is a budget ledger directory (dir/ledger/budget.jsonl) with
// its store open for appending.
func tallyLedger(t testing.TB) (string, *ledger.Ledger) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	l, err := ledger.OpenWriter(filepath.Join(dir, "ledger", "budget.jsonl"), ledger.Options{Actor: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return dir, l
}

func reservedDraft(rid, provider, subject string, tokens, micro int64) ledger.Draft {
	return ledger.Draft{EventType: EventReserved, Decision: "RESERVED", Reason: "r", Metadata: map[string]any{"reservation_id": rid,
		"provider_id": provider, "subject": subject, "max_tokens_total": tokens, "max_cost_micro_usd": micro}}
}

func callDraft(rid, status, provider, subject string, in, out, micro int64) ledger.Draft {
	return ledger.Draft{EventType: EventCall, Decision: status, Reason: "c", Metadata: map[string]any{"reservation_id": rid,
		"status": status, "provider_id": provider, "subject": subject, "gen_ai.usage.input_tokens": in,
		"gen_ai.usage.output_tokens": out, "cost_micro_usd": micro}}
}

// wholeSum is what the caps summed before the tally: every LLM entry read.
func wholeSum(t *testing.T, l ledger.Store) *ledgerSpend {
	t.Helper()
	ls := newLedgerSpend()
	require.NoError(t, l.Find(context.Background(), ledger.Query{EventTypes: []string{EventReserved, EventCall}}, func(e *ledger.Entry) bool {
		ls.add(e)
		return true
	}))
	return ls
}

// TestTallyCatchesUp: a tally caught up from its file, step by step, is
// the tally computed from the whole ledger, and its sums are the ones a
// read of every entry gives: a settled reservation counts what its call
// charged, an open one in full, a call not made nothing, a call without
// its reservation what it charged.
func TestTallyCatchesUp(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	steps := [][]ledger.Draft{
		{reservedDraft("RSV-1", "p", "a", 1000, 500), {EventType: "NOTE", Decision: "x", Reason: "not an LLM entry"}},
		{callDraft("RSV-1", StatusOK, "p", "a", 30, 20, 7), reservedDraft("RSV-2", "p", "b", 900, 400)},
		{reservedDraft("RSV-3", "q", "a", 100, 10), callDraft("RSV-3", StatusNotCalled, "q", "a", 0, 0, 0)},
		{callDraft("RSV-9", StatusOK, "q", "c", 1, 1, 99)},
		{callDraft("RSV-2", StatusCancelled, "p", "b", 5, 5, 3)},
	}
	for i, ds := range steps {
		_, err := l.Append(ctx, ds)
		require.NoError(t, err)
		got, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
		require.NoError(t, err)
		require.False(t, disagreed, "step %d", i)
		fresh, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
		require.NoError(t, err)
		require.False(t, disagreed, "step %d: the tally caught up agrees with the whole ledger", i)
		require.True(t, sameSums(got, fresh), "step %d", i)

		whole := wholeSum(t, l)
		cs := got.spend()
		require.Equal(t, whole.total(nil), cs.ofPlane(), "step %d: plane", i)
		for _, p := range []string{"p", "q"} {
			// RSV-9's call has no reservation: both count it under its
			// own provider and subject.
			require.Equal(t, whole.total(func(r *spendRow) bool { return r.provider == p }), cs.ofProvider(p), "step %d: provider %s", i, p)
		}
		for _, s := range []string{"a", "b", "c"} {
			require.Equal(t, whole.total(func(r *spendRow) bool { return r.subject == s }), cs.ofSubject(s), "step %d: subject %s", i, s)
		}
	}
	got, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
	require.NoError(t, err)
	require.Empty(t, got.Pending, "every reservation settled")
	require.Equal(t, Spend{Calls: 3, Tokens: 50 + 10 + 2, MicroUSD: 7 + 3 + 99}, got.Plane)
	require.Equal(t, Spend{Calls: 1, Tokens: 2, MicroUSD: 99}, got.BySubject["c"], "a call without its reservation counts under its own subject")
}

// TestTallyNotBelieved: a tally that does not match the ledger is never
// believed, whatever it says: it is recomputed from the ledger. A tally
// of another ledger of the same size (its root differs), one of a larger
// tree (the ledger rolled back), one that does not parse, of another
// version (the unauthenticated version 1 among them), or with a hole in
// it; and one whose MAC is not the key's over its bytes: sums lowered in
// place (the size and root kept), or a tally sealed with another key.
func TestTallyNotBelieved(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	_, err := l.Append(ctx, []ledger.Draft{reservedDraft("RSV-1", "p", "a", 1000, 500), reservedDraft("RSV-2", "p", "a", 10, 5)})
	require.NoError(t, err)
	truth, _, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
	require.NoError(t, err)
	require.Equal(t, int64(505), truth.spend().ofPlane().MicroUSD)
	honest, err := os.ReadFile(tallyFile(dir))
	require.NoError(t, err)

	// The same number of entries, other content: another root.
	otherDir, other := tallyLedger(t)
	_, err = other.Append(ctx, []ledger.Draft{callDraft("RSV-1", StatusOK, "p", "a", 1, 1, 1), callDraft("RSV-2", StatusOK, "p", "a", 1, 1, 1)})
	require.NoError(t, err)
	_, _, err = loadTally(ctx, otherDir, other, tallyTestKey, false, t.Logf)
	require.NoError(t, err)
	forged, err := os.ReadFile(tallyFile(otherDir))
	require.NoError(t, err)

	bigger := *truth
	bigger.Size, bigger.Plane = truth.Size+5, Spend{}
	hole := *truth
	hole.Pending = map[string]*openRow{"RSV-1": nil}
	versioned := *truth
	versioned.Version = tallyVersion + 1
	v1 := *truth
	v1.Version = 1
	v1JSON, err := json.Marshal(&v1)
	require.NoError(t, err)
	// A writer of the plane's files keeps the MAC, size and root and
	// empties the open reservations: 505 µUSD held becomes 0.
	var env tallyEnvelope
	require.NoError(t, json.Unmarshal(honest, &env))
	lowered := bytes.Replace(env.Tally, []byte(`"open":{"RSV-1"`), []byte(`"open":{},"x":{"RSV-1"`), 1)
	require.NotEqual(t, env.Tally, lowered)
	env.Tally = lowered
	loweredJSON, err := json.Marshal(env)
	require.NoError(t, err)
	low := *truth
	low.Pending = map[string]*openRow{}
	lowJSON, err := json.Marshal(&low)
	require.NoError(t, err)
	noMAC := []byte(`{"tally":` + string(lowJSON) + `}`)

	for name, b := range map[string][]byte{"another ledger's": forged, "a larger tree's": sealed(t, tallyTestKey, &bigger),
		"garbage": []byte("{not json"), "a hole": sealed(t, tallyTestKey, &hole), "another version": sealed(t, tallyTestKey, &versioned),
		"an unauthenticated version 1": v1JSON, "lowered in place": loweredJSON,
		"another key's": sealed(t, []byte("another plane's key, 32 bytes..."), &low), "no MAC": noMAC,
		"empty": nil} {
		require.NoError(t, os.WriteFile(tallyFile(dir), b, 0o644))
		got, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
		require.NoError(t, err, name)
		require.True(t, sameSums(truth, got), "%s tally: recomputed from the ledger", name)
		require.True(t, disagreed, "%s tally: reported as not believed", name)
		require.Equal(t, int64(505), got.spend().ofPlane().MicroUSD, name)
		b, err := os.ReadFile(tallyFile(dir))
		require.NoError(t, err)
		require.Equal(t, string(honest), string(b), "%s tally: replaced by the ledger's", name)
	}

	// A tally that matches the tree but not the sums, sealed with the key
	// (its writer's bug, not a forger's): believed by a call, but
	// recover's rebuild says so, and replaces it.
	require.NoError(t, os.WriteFile(tallyFile(dir), sealed(t, tallyTestKey, &low), 0o644))
	got, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
	require.NoError(t, err)
	require.True(t, disagreed, "recover's rebuild reports a tally that disagrees")
	require.True(t, sameSums(truth, got))
	again, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
	require.NoError(t, err)
	require.True(t, sameSums(truth, again), "the rebuilt tally replaced it")
}

// TestTallyNoKey: on a plane without a checkpoint key there is no key to
// authenticate a tally with: the sums come from the whole ledger at every
// call, a tally file there (planted, or left by a keyed plane) is never
// read, and none is written.
func TestTallyNoKey(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	_, err := l.Append(ctx, []ledger.Draft{reservedDraft("RSV-1", "p", "a", 1000, 500)})
	require.NoError(t, err)
	got, disagreed, err := loadTally(ctx, dir, l, nil, false, t.Logf)
	require.NoError(t, err)
	require.False(t, disagreed)
	require.Equal(t, int64(500), got.spend().ofPlane().MicroUSD)
	_, err = os.Lstat(tallyFile(dir))
	require.ErrorIs(t, err, fs.ErrNotExist, "no tally written without a key")

	low := *got
	low.Pending = map[string]*openRow{}
	planted := sealed(t, nil, &low)
	require.NoError(t, os.WriteFile(tallyFile(dir), planted, 0o644))
	got, _, err = loadTally(ctx, dir, l, nil, false, t.Logf)
	require.NoError(t, err)
	require.Equal(t, int64(500), got.spend().ofPlane().MicroUSD, "a planted tally is not read")
	b, err := os.ReadFile(tallyFile(dir))
	require.NoError(t, err)
	require.Equal(t, planted, b, "nor replaced")
}

// BenchmarkReserveWithCaps is one call's reservation and settlement under
// a plane cap, at 10,000 and 50,000 prior LLM entries: through the tally
// (O(entries since the last call)), paired with the whole-ledger sum the
// caps made before it (rescan) in the same run.
func BenchmarkReserveWithCaps(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10_000, 50_000} {
		dir, l := tallyLedger(b)
		const batch = 1000
		for i := 0; i < n; i += batch {
			ds := make([]ledger.Draft, 0, batch)
			for j := i; j < i+batch; j += 2 {
				rid := fmt.Sprintf("RSV-%016x", j)
				ds = append(ds, reservedDraft(rid, "p", "a", 300, 90), callDraft(rid, StatusOK, "p", "a", 10, 10, 3))
			}
			_, err := l.Append(ctx, ds)
			require.NoError(b, err)
		}
		for _, mode := range []string{"tally", "rescan"} {
			b.Run(fmt.Sprintf("entries=%d/%s", n, mode), func(b *testing.B) {
				// The tally as the call before left it.
				if _, _, err := loadTally(ctx, dir, l, tallyTestKey, false, nil); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					release, err := holdLedger(ctx, dir, l)
					if err != nil {
						b.Fatal(err)
					}
					t, _, err := loadTally(ctx, dir, l, tallyTestKey, mode == "rescan", nil)
					if err != nil {
						b.Fatal(err)
					}
					if t.spend().ofPlane().MicroUSD <= 0 {
						b.Fatal("no spend")
					}
					rid := fmt.Sprintf("RSV-b%015x", i)
					i++
					_, err = l.Append(ctx, []ledger.Draft{reservedDraft(rid, "p", "a", 300, 90)})
					release()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := l.Append(ctx, []ledger.Draft{callDraft(rid, StatusOK, "p", "a", 10, 10, 3)}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestTallyAbandoned: a reservation whose caller was killed stays open in
// the tally, counting in full; the judge settles it through the tally's
// rows without changing the caps' sums, and once its LLM_CALL (status
// abandoned, charged in full) is appended the tally folds it as settled,
// at the same spend: nothing is lost or counted twice across kill -9,
// settlement and recover's rebuild.
func TestTallyAbandoned(t *testing.T) {
	if !inflightSupported || bootID() == "" {
		t.Skip("no in-flight marks on this system")
	}
	ctx := context.Background()
	dir, l := tallyLedger(t)
	h, err := openInflight(dir)
	require.NoError(t, err)
	rid := newReservationID()
	require.NoError(t, h.hold(rid))
	d := reservedDraft(rid, "p", "a", 300, 900)
	d.Metadata["inflight_boot_id"], d.Metadata["inflight_file"] = bootID(), h.id
	d.Metadata["gen_ai.request.max_tokens"] = int64(200)
	_, err = l.Append(ctx, []ledger.Draft{d})
	require.NoError(t, err)
	h.close() // the caller is killed

	tl, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
	require.NoError(t, err)
	cs := tl.spend()
	before := cs.ofPlane()
	require.Equal(t, Spend{Calls: 1, Tokens: 300, MicroUSD: 900}, before, "open: counted in full")
	j := newJudge(dir)
	ds, _ := j.settle(cs.open, "next_call")
	j.close()
	require.Len(t, ds, 1)
	require.Equal(t, before, cs.ofPlane(), "settling changes no sum")
	_, err = l.Append(ctx, ds)
	require.NoError(t, err)

	tl, _, err = loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
	require.NoError(t, err)
	require.Empty(t, tl.Pending)
	require.Equal(t, before, tl.spend().ofPlane(), "settled in full: the same spend")
	j = newJudge(dir)
	ds, _ = j.settle(tl.spend().open, "recover")
	j.close()
	require.Empty(t, ds, "nothing settled twice")
	fresh, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
	require.NoError(t, err)
	require.False(t, disagreed)
	require.True(t, sameSums(tl, fresh))
}

// FuzzTally: whatever bytes lie in the tally file, a call's sums neither
// fail nor panic, and they are always the whole ledger's: the only tallies
// believed are ones the key sealed, and the key seals only what the
// ledger says.
func FuzzTally(f *testing.F) {
	ctx := context.Background()
	dir, l := tallyLedger(f)
	_, err := l.Append(ctx, []ledger.Draft{reservedDraft("RSV-1", "p", "a", 1000, 500), callDraft("RSV-1", StatusOK, "p", "a", 3, 4, 5),
		reservedDraft("RSV-2", "q", "b", 10, 5)})
	require.NoError(f, err)
	truth, _, err := loadTally(ctx, dir, l, tallyTestKey, true, nil)
	require.NoError(f, err)
	seed, err := os.ReadFile(tallyFile(dir))
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"mac":"","tally":{"version":2,"size":0,"root":"","plane":{},"providers":{},"subjects":{},"open":{}}}`))
	f.Add([]byte(`{"version":1,"size":1,"open":{"RSV-1":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		require.NoError(t, os.WriteFile(tallyFile(dir), b, 0o644))
		got, _, err := loadTally(ctx, dir, l, tallyTestKey, false, nil)
		require.NoError(t, err)
		require.True(t, sameSums(got, truth), "a tally the key did not seal was believed")
	})
}

// TestTallyNotRegular: a FIFO or a symbolic link planted where the tally
// is kept is never read (a FIFO would block the call while it holds the
// budget lock): the sums are recomputed from the ledger and the tally
// written back as a regular file.
func TestTallyNotRegular(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	_, err := l.Append(ctx, []ledger.Draft{reservedDraft("RSV-1", "p", "a", 1000, 500)})
	require.NoError(t, err)
	low := filepath.Join(t.TempDir(), "low.json")
	require.NoError(t, os.WriteFile(low, []byte(`{"version":1}`), 0o644))
	for name, plant := range map[string]func(string) error{
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"symlink": func(p string) error { return os.Symlink(low, p) },
	} {
		os.Remove(tallyFile(dir))
		require.NoError(t, plant(tallyFile(dir)), name)
		done := make(chan *tally, 1)
		go func() {
			got, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
			require.NoError(t, err, name)
			done <- got
		}()
		select {
		case got := <-done:
			require.Equal(t, int64(500), got.spend().ofPlane().MicroUSD, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s at the tally's path: the call blocked", name)
		}
		fi, err := os.Lstat(tallyFile(dir))
		require.NoError(t, err, name)
		require.True(t, fi.Mode().IsRegular(), "%s: the tally written back is a regular file", name)
		b, err := os.ReadFile(low)
		require.NoError(t, err)
		require.Equal(t, `{"version":1}`, string(b), "%s: the link's target untouched", name)
	}
}
