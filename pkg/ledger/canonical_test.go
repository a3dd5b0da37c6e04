package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// TestDraftCanonicalSameBytes holds a draft whose metadata comes with its
// canonical form (Draft.Canonical) to the same draft without: the same
// lines and hashes, byte for byte, whether the batch is encoded in order
// or spread, with and without the auth stamp, with the whole map or only
// what the ledger reads of it; a form the ledger cannot use as it is (not
// an object, or a map the auth stamp changes) is left aside and the
// metadata encoded from the map, or from the canonical form when the map
// is partial.
func TestDraftCanonicalSameBytes(t *testing.T) {
	for _, n := range []int{1, 3, spreadFrom, 300} {
		for _, authOff := range []bool{false, true} {
			for _, c := range []struct{ stamped, partial bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
				stamped := c.stamped
				t.Run(fmt.Sprintf("n%d/auth%v/stamped%v/partial%v", n, authOff, stamped, c.partial), func(t *testing.T) {
					plain := spreadDrafts(n)
					withRaw := spreadDrafts(n)
					for i := range plain {
						if stamped {
							if plain[i].Metadata == nil {
								plain[i].Metadata = map[string]any{}
								withRaw[i].Metadata = map[string]any{}
							}
							plain[i].Metadata["_auth"] = "off"
							withRaw[i].Metadata["_auth"] = "off"
						}
						switch i % 3 {
						case 0: // a Raw that is not an object: ignored
							withRaw[i].Canonical, _ = jcs.MarshalRaw("not an object")
						default:
							raw, err := jcs.MarshalRaw(withRaw[i].Metadata)
							require.NoError(t, err)
							withRaw[i].Canonical = raw
							if c.partial { // the map holds only what the ledger reads
								read := map[string]any{}
								for k, v := range withRaw[i].Metadata {
									if k == "_auth" || IndexedKey(k) {
										read[k] = v
									}
								}
								withRaw[i].Metadata = read
							}
						}
					}
					lines := func(ds []Draft) ([]byte, []Entry) {
						clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
						opts := Options{Actor: "tester", AuthOff: authOff, Now: func() time.Time { clock = clock.Add(time.Microsecond); return clock }}
						var f [64]tlog.Hash
						buf, _, es, _, err := build(nil, nil, &f, 5, "head", 0, ds, opts)
						require.NoError(t, err)
						return buf, es
					}
					a, ea := lines(plain)
					b, eb := lines(withRaw)
					require.Len(t, eb, n)
					// Ids carry random digits: compare each line with its
					// id put back to the plain one's.
					for i := range ea {
						eb[i].ID, eb[i].PreviousHash = ea[i].ID, ea[i].PreviousHash
					}
					var want, got []byte
					for i := range ea {
						lw, _, err := encode(nil, &ea[i])
						require.NoError(t, err)
						lg, _, err := encode(nil, &eb[i])
						require.NoError(t, err)
						want, got = append(want, lw...), append(got, lg...)
						require.Equal(t, string(lw), string(lg), "entry %d", i)
						require.Equal(t, ea[i].EntryHash, eb[i].EntryHash, "entry %d", i)
					}
					require.Equal(t, len(a), len(b))
					require.Equal(t, string(want), string(got))
				})
			}
		}
	}
}

// TestDraftCanonicalAppend appends drafts with their canonical metadata
// to a ledger, which then verifies, and reads back the metadata given.
func TestDraftCanonicalAppend(t *testing.T) {
	path := t.TempDir() + "/l.jsonl"
	l, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer l.Close()
	ds := spreadDrafts(200)
	for i := range ds {
		if ds[i].Metadata != nil {
			ds[i].Canonical, err = jcs.MarshalRaw(ds[i].Metadata)
			require.NoError(t, err)
		}
	}
	_, err = l.Append(t.Context(), ds)
	require.NoError(t, err)
	i := 0
	require.NoError(t, l.Lines(t.Context(), 0, 200, func(seq int64, line []byte) bool {
		e, err := ParseLine(line)
		require.NoError(t, err)
		want, _ := jcs.Marshal(ds[i].Metadata)
		if ds[i].Metadata == nil {
			want = []byte("{}")
		}
		got, _ := jcs.Marshal(e.Metadata)
		require.Equal(t, string(want), string(got), "entry %d", seq)
		i++
		return true
	}))
	require.Equal(t, 200, i)
	res, err := Verify(t.Context(), l, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.Valid, "%+v", res)
}
