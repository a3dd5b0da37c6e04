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
//
// Three kinds of goroutine share the work: the caller frames and buffers,
// compressors deflate blocks (one per core), and one writer writes the
// compressed blocks to w in order, so that whatever w does (a file, a hash)
// does not hold up the caller.
type parallelGzip struct {
	w      io.Writer
	buf    []byte
	crc    uint32
	size   uint32
	order  chan chan *bytes.Buffer // compressed blocks, in order; bounds memory
	done   chan error              // the writer's result
	sem    chan struct{}
	err    error
	pool   sync.Pool // input block buffers
	outs   sync.Pool // compressed block buffers
	closed bool
}

func newParallelGzip(w io.Writer) (*parallelGzip, error) {
	header := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, gzipOSUnknown} // XFL 4: fastest
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	z := &parallelGzip{w: w, buf: make([]byte, 0, blockSize), sem: make(chan struct{}, runtime.GOMAXPROCS(0)),
		order: make(chan chan *bytes.Buffer, 16), done: make(chan error, 1)}
	go func() {
		var err error
		for out := range z.order {
			b := <-out
			if err == nil {
				_, err = z.w.Write(b.Bytes())
			}
			b.Reset()
			z.outs.Put(b)
		}
		z.done <- err
	}()
	return z, nil
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
	out := make(chan *bytes.Buffer, 1)
	z.order <- out
	z.sem <- struct{}{}
	go func() {
		defer func() { <-z.sem }()
		b, ok := z.outs.Get().(*bytes.Buffer)
		if !ok {
			b = new(bytes.Buffer)
		}
		level := gzipLevel
		if incompressible(block) {
			level = flate.NoCompression // stored: no time lost searching for matches
		}
		fw, _ := flate.NewWriter(b, level) // both levels are valid: no error
		fw.Write(block)
		if final {
			fw.Close()
		} else {
			fw.Flush()
		}
		block = block[:0]
		z.pool.Put(&block)
		out <- b
	}()
	if next, ok := z.pool.Get().(*[]byte); ok {
		z.buf = *next
	} else {
		z.buf = make([]byte, 0, blockSize)
	}
}

// incompressible reports whether a block is not worth deflating: a 64 KiB
// sample of it shrinks by less than 3%. Random or already-compressed data
// then costs a copy instead of a match search. The decision depends only on
// the bytes, so the output stays deterministic.
func incompressible(block []byte) bool {
	const sample = 64 << 10
	if len(block) < 2*sample {
		return false
	}
	var n countWriter
	fw, _ := flate.NewWriter(&n, gzipLevel)
	fw.Write(block[:sample])
	fw.Close()
	return n > sample*97/100
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Close compresses the last block, writes every block and the trailer.
func (z *parallelGzip) Close() error {
	z.flushBlock(true)
	z.closed = true
	close(z.order)
	if err := <-z.done; err != nil {
		z.err = err
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	_, z.err = z.w.Write(trailer[:])
	return z.err
}

// abort stops the writer goroutine of a stream that will not be closed (an
// error part-way): it waits for blocks in flight and writes no trailer.
func (z *parallelGzip) abort() {
	if z.closed {
		return
	}
	z.closed = true
	close(z.order)
	<-z.done
}
