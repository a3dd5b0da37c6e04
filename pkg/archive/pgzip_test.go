package archive

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// Any gzip reader inflates the parallel writer's output to the input, at
// every size around the block boundaries, and the bytes are the same every
// time (deterministic).
func TestParallelGzipRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, blockSize - 1, blockSize, blockSize + 1, 3*blockSize + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.IntN(16)) // compressible, not trivially
		}
		compress := func() []byte {
			var buf bytes.Buffer
			z, err := newParallelGzip(&buf)
			require.NoError(t, err)
			// Uneven writes cross block boundaries mid-call.
			for rest := data; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(300_000))
				_, err := z.Write(rest[:k])
				require.NoError(t, err)
				rest = rest[k:]
			}
			require.NoError(t, z.Close())
			return buf.Bytes()
		}
		a, b := compress(), compress()
		require.Equal(t, a, b, "deterministic at %d bytes", n)
		r, err := gzip.NewReader(bytes.NewReader(a))
		require.NoError(t, err)
		r.Multistream(false)
		got, err := io.ReadAll(r)
		require.NoError(t, err, "inflate %d bytes", n)
		require.Equal(t, data, got, "round trip at %d bytes", n)
	}
}

// Incompressible blocks are stored, compressible ones deflated, and both
// round-trip.
func TestIncompressibleBlocksStored(t *testing.T) {
	random := make([]byte, 3*blockSize)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	require.True(t, incompressible(random[:blockSize]))
	text := bytes.Repeat([]byte(`{"tool":"bash","args":["ls","-la"]}`+"\n"), blockSize/36+1)[:blockSize]
	require.False(t, incompressible(text))

	var buf bytes.Buffer
	z, err := newParallelGzip(&buf)
	require.NoError(t, err)
	z.Write(random)
	z.Write(text)
	require.NoError(t, z.Close())
	require.Less(t, buf.Len(), len(random)+len(text)/4, "text still compresses; random costs little more than its size")
	r, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, append(append([]byte{}, random...), text...), got)
}
