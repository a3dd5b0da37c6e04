package plane

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReceiptRoundTrip(t *testing.T) {
	r := &Receipt{PackageID: "PKG-X-001", Version: "1.0.0", Files: []ReceiptFile{{Path: "lib/x", SHA256: "sha256:00", Size: 1}}}
	b, err := r.Marshal()
	require.NoError(t, err)
	got, err := ParseReceipt(b)
	require.NoError(t, err)
	require.Equal(t, r, got)
	for _, bad := range []string{`{"package_id":"P","extra":1}`, `{"package_id":"P"} {}`, `[]`, `{"files":[{"path":"a","mode":1}]}`} {
		_, err := ParseReceipt([]byte(bad))
		require.Error(t, err, bad)
	}
}

func FuzzParseReceipt(f *testing.F) {
	f.Add([]byte(`{"package_id":"PKG-X-001","version":"1.0.0","files":[{"path":"a","sha256":"sha256:00","size":1}]}`))
	f.Add([]byte(`{"package_id":"P","extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			return
		}
		if _, err := r.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
