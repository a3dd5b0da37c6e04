package cli

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
)

// takeOperation removes and returns the request's "operation" field.
func takeOperation(req Request) (string, error) {
	v, ok := req["operation"]
	if !ok {
		return "", nil
	}
	delete(req, "operation")
	s, ok := v.(string)
	if !ok {
		return "", Invalidf("SCHEMA_VIOLATION", "operation must be a string, got %s", jsonKind(v))
	}
	return s, nil
}

// MaxRequest is the most bytes one request may take: one NDJSON line, or
// one whole (pretty-printed) document. Decoding costs memory many times a
// request's size, so a larger one is refused (REQUEST_TOO_LARGE, exit 3)
// before it is held whole. Lines shorter than the read buffer (256 KiB,
// every request of a fast stream) are never measured.
const MaxRequest = 16 << 20

func errTooLarge() *Error {
	return Invalidf("REQUEST_TOO_LARGE", "a request on stdin is larger than %d MiB", MaxRequest>>20).
		WithHint("split it: one request per line, each under %d MiB", MaxRequest>>20)
}

// deltaPrefix starts a partial-output line of a streaming verb (cp-llm
// complete --stream, DESIGN.md §3): {"status":"delta",...}, written
// compact, before the verb's envelope. A downstream binary skips them.
const deltaPrefix = `{"status":"delta"`

// isDelta reports whether line is a delta line.
func isDelta(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), []byte(deltaPrefix))
}

// skipDeltas drops the delta lines that start b (a streaming verb's output
// read whole): what follows them is the envelope.
func skipDeltas(b []byte) []byte {
	for isDelta(b) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	return b
}

// readLine returns the next non-blank line of an NDJSON stream, nil at EOF.
// Delta lines of an upstream streaming verb are skipped like blank ones.
// A line that fits the reader's buffer is returned in place: it is valid
// until the next read, so callers decode it (decoding copies what it
// keeps), or copy it, before reading again.
func readLine(br *bufio.Reader) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it, up to the cap.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > MaxRequest {
					return nil, errTooLarge()
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			if len(bytes.TrimSpace(long)) > MaxRequest {
				return nil, errTooLarge()
			}
			line = long
		}
		if len(bytes.TrimSpace(line)) > 0 && !isDelta(line) {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, Errorf(ExitUnavailable, "IO_ERROR", "reading stdin: %v", err)
			}
			return line, nil
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, Errorf(ExitUnavailable, "IO_ERROR", "reading stdin: %v", err)
		}
	}
}

// hasInput reports whether stdin may hold a request: it is not a terminal
// (or /dev/null, also a character device).
func hasInput(stdin io.Reader) bool {
	if stdin == nil {
		return false
	}
	f, ok := stdin.(*os.File)
	if !ok {
		return true
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice == 0
}
