package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
)

// blockSize is the fixed amount of uncompressed data [Write] deflates as
// one independent block. Fixed boundaries keep the output deterministic;
// independent blocks let every core compress.
const blockSize = 1 << 20

// parallelGzip is a gzip writer (one member, RFC 1952) whose deflate stream
// is made of independently compressed blocks: each block but the last ends
// with a sync flush (byte-aligned, not final), the last one with the final
// block, so their concatenation is one valid deflate stream any gzip reader
// inflates. The header is fixed: no name, zero mtime, OS byte 255.
type parallelGzip struct {
	w       io.Writer
	buf     []byte
	crc     uint32
	size    uint32
	pending []chan []byte // compressed blocks, in order
	sem     chan struct{}
	err     error
	pool    sync.Pool
}

func newParallelGzip(w io.Writer) (*parallelGzip, error) {
	header := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, gzipOSUnknown} // XFL 4: fastest
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return &parallelGzip{w: w, buf: make([]byte, 0, blockSize), sem: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

func (z *parallelGzip) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if z.err != nil {
			return 0, z.err
		}
		k := min(len(p), blockSize-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == blockSize {
			z.flushBlock(false)
		}
	}
	return n, z.err
}

// flushBlock hands the buffered block to a compressing goroutine and
// writes out the blocks already finished, in order.
func (z *parallelGzip) flushBlock(final bool) {
	block := z.buf
	z.crc = crc32.Update(z.crc, crc32.IEEETable, block)
	z.size += uint32(len(block))
	out := make(chan []byte, 1)
	z.pending = append(z.pending, out)
	z.sem <- struct{}{}
	go func() {
		defer func() { <-z.sem }()
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, gzipLevel) // gzipLevel is valid: no error
		fw.Write(block)
		if final {
			fw.Close()
		} else {
			fw.Flush()
		}
		block = block[:0]
		z.pool.Put(&block)
		out <- b.Bytes()
	}()
	if next, ok := z.pool.Get().(*[]byte); ok {
		z.buf = *next
	} else {
		z.buf = make([]byte, 0, blockSize)
	}
	z.drain(false)
}

// drain writes finished blocks in order; with wait it waits for all.
func (z *parallelGzip) drain(wait bool) {
	for len(z.pending) > 0 {
		var b []byte
		if wait {
			b = <-z.pending[0]
		} else {
			select {
			case b = <-z.pending[0]:
			default:
				return
			}
		}
		z.pending = z.pending[1:]
		if z.err == nil {
			_, z.err = z.w.Write(b)
		}
	}
}

// Close compresses the last block, writes every block and the trailer.
func (z *parallelGzip) Close() error {
	z.flushBlock(true)
	z.drain(true)
	if z.err != nil {
		return z.err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	_, z.err = z.w.Write(trailer[:])
	return z.err
}
