package pgstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/control-plane/cp/pkg/ledger"
)

// copySignature opens the binary format of COPY TO STDOUT (FORMAT
// binary), followed by a 32-bit flags field and a 32-bit header
// extension length (PostgreSQL's documentation of COPY, "Binary Format").
var copySignature = []byte("PGCOPY\n\377\r\n\x00")

// copyRows is an io.Writer that parses the binary format of COPY TO
// STDOUT as it streams in (pgconn.CopyTo writes each CopyData message to
// it), calling row with each row's fields: nil for NULL, else a slice
// valid only during the call. A row split across writes is carried over.
// Anything but the format (a wrong signature, a flag, a row of another
// width, a field longer than ledger.MaxLine, bytes after the trailer) is
// an error, and ends the copy.
type copyRows struct {
	fields int
	row    func(vals [][]byte) error
	buf    []byte // a partial row carried to the next write
	header bool   // the header has been read
	done   bool   // the trailer has been read
	vals   [][]byte
}

var errCopyFormat = errors.New("not PostgreSQL's binary COPY format")

func (c *copyRows) Write(p []byte) (int, error) {
	data := p
	if len(c.buf) > 0 {
		c.buf = append(c.buf, p...)
		data = c.buf
	}
	n, err := c.parse(data)
	if err != nil {
		return 0, err
	}
	c.buf = append(c.buf[:0], data[n:]...)
	return len(p), nil
}

// parse reads the complete rows at the start of b and returns how many
// bytes they take.
func (c *copyRows) parse(b []byte) (int, error) {
	off := 0
	if !c.header {
		if len(b) < len(copySignature)+8 {
			return 0, nil
		}
		if !bytes.Equal(b[:len(copySignature)], copySignature) {
			return 0, errCopyFormat
		}
		i := len(copySignature)
		if flags := binary.BigEndian.Uint32(b[i:]); flags != 0 {
			return 0, fmt.Errorf("%w: header flags %#x", errCopyFormat, flags)
		}
		ext := binary.BigEndian.Uint32(b[i+4:])
		if ext > 1<<16 {
			return 0, fmt.Errorf("%w: a header extension of %d bytes", errCopyFormat, ext)
		}
		if len(b) < i+8+int(ext) {
			return 0, nil
		}
		off, c.header = i+8+int(ext), true
	}
	for off < len(b) {
		if c.done {
			return 0, fmt.Errorf("%w: data after the trailer", errCopyFormat)
		}
		if len(b)-off < 2 {
			break
		}
		nf := int16(binary.BigEndian.Uint16(b[off:]))
		if nf == -1 {
			c.done = true
			off += 2
			continue
		}
		if int(nf) != c.fields {
			return 0, fmt.Errorf("%w: a row of %d fields, not %d", errCopyFormat, nf, c.fields)
		}
		p, vals, whole := off+2, c.vals[:0], true
		for range c.fields {
			if len(b)-p < 4 {
				whole = false
				break
			}
			l := int32(binary.BigEndian.Uint32(b[p:]))
			p += 4
			if l == -1 {
				vals = append(vals, nil)
				continue
			}
			if l < 0 || l > ledger.MaxLine {
				return 0, fmt.Errorf("%w: a field of %d bytes", errCopyFormat, l)
			}
			if len(b)-p < int(l) {
				whole = false
				break
			}
			vals = append(vals, b[p:p+int(l):p+int(l)])
			p += int(l)
		}
		c.vals = vals
		if !whole {
			break
		}
		if err := c.row(vals); err != nil {
			return 0, err
		}
		off = p
	}
	return off, nil
}

// finish reports a copy that ended before its trailer.
func (c *copyRows) finish() error {
	if !c.done {
		return fmt.Errorf("%w: the copy ended before its trailer", errCopyFormat)
	}
	return nil
}

// literal quotes s as an SQL string literal, for a statement that takes
// no parameters (COPY): quotes doubled, as PostgreSQL reads them with
// standard_conforming_strings on (the default since 9.1; copyTo refuses a
// server without it). A NUL cannot be in a text value, and is refused.
func literal(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", ledger.Errorf("INVALID_INPUT", "a ledger name holds a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}
