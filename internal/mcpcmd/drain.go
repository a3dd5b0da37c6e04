package mcpcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// drainIdle is how long a session whose client closed stdin waits without
// a response being written before it gives up on the requests still open.
const drainIdle = 30 * time.Second

// drain lets a stdio session answer what it was asked before it ends: the
// client may write its requests and close stdin at once (cat session.jsonl
// | cp-mcp serve), and the SDK ends a session at EOF. Its reader holds
// EOF back until every request read has its response written (or ctx is
// done, or no response came for drainIdle). It sees the newline-delimited
// JSON-RPC messages as they pass: a request has an id and a method, a
// response an id and none.
type drain struct {
	ctx     context.Context
	in      io.Reader
	out     io.Writer
	mu      sync.Mutex
	pending int
	wrote   chan struct{} // a response was written
	inLine  []byte
	outLine []byte
}

func newDrain(ctx context.Context, in io.Reader, out io.Writer) *drain {
	return &drain{ctx: ctx, in: in, out: out, wrote: make(chan struct{}, 1)}
}

// message says whether a JSON-RPC line is a request or a response.
func message(line []byte) (request, response bool) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
	}
	if json.Unmarshal(line, &m) != nil || len(m.ID) == 0 || bytes.Equal(m.ID, []byte("null")) {
		return false, false
	}
	return m.Method != nil, m.Method == nil
}

// lines calls fn for each whole line p completes in buf.
func lines(buf *[]byte, p []byte, fn func([]byte)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			*buf = append(*buf, p...)
			return
		}
		line := append(*buf, p[:i]...)
		if len(bytes.TrimSpace(line)) > 0 {
			fn(line)
		}
		*buf, p = (*buf)[:0], p[i+1:]
	}
}

func (d *drain) Read(p []byte) (int, error) {
	n, err := d.in.Read(p)
	lines(&d.inLine, p[:n], func(line []byte) {
		if req, _ := message(line); req {
			d.mu.Lock()
			d.pending++
			d.mu.Unlock()
		}
	})
	if err == io.EOF {
		d.wait()
	}
	return n, err
}

// wait returns once no request is open, ctx is done, or no response was
// written for drainIdle.
func (d *drain) wait() {
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	for {
		d.mu.Lock()
		open := d.pending
		d.mu.Unlock()
		if open <= 0 {
			return
		}
		select {
		case <-d.ctx.Done():
			return
		case <-idle.C:
			return
		case <-d.wrote:
			idle.Reset(drainIdle)
		}
	}
}

func (d *drain) Write(p []byte) (int, error) {
	n, err := d.out.Write(p)
	lines(&d.outLine, p[:n], func(line []byte) {
		if _, resp := message(line); resp {
			d.mu.Lock()
			d.pending--
			d.mu.Unlock()
			select {
			case d.wrote <- struct{}{}:
			default:
			}
		}
	})
	return n, err
}

func (d *drain) Close() error { return nil }
