package trace

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/tidwall/gjson"
)

// ownerRow finds the row of path in the tier's file_ownership.csv without
// decoding the whole table (10,000 rows cost a CSV parse and a check of
// each): the line that begins with the path's field, as the registry
// encodes it, parsed and checked alone. The row only points at the owner:
// File then holds the owner's receipt, manifest and install entry to it.
// A header other than the registry's is REGISTRY_INVALID, as Read says.
func ownerRow(dir, path string) (registry.Owner, bool, error) {
	m, err := ownerRows(dir, []string{path})
	o, ok := m[path]
	return o, ok, err
}

// ownerRows is ownerRow for several paths, reading the table once.
func ownerRows(dir string, paths []string) (map[string]registry.Owner, error) {
	out := map[string]registry.Owner{}
	b, err := regfile.ReadNoFollow(filepath.Join(dir, registry.Dir, registry.Ownership.File))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	header := strings.Join(registry.Ownership.Columns, ",") + "\n"
	if !bytes.HasPrefix(b, []byte(header)) {
		// Not the format this reader knows: let the full reader say why.
		_, err := registry.Read(dir, registry.Ownership)
		if err == nil {
			err = errors.New("file_ownership.csv: unexpected header")
		}
		return nil, err
	}
	body := b[len(header)-1:] // from the header's newline: every row follows a "\n"
	for _, path := range paths {
		var field bytes.Buffer
		w := csv.NewWriter(&field)
		w.Write([]string{path})
		w.Flush()
		prefix := append([]byte{'\n'}, bytes.TrimSuffix(field.Bytes(), []byte("\n"))...)
		prefix = append(prefix, ',')
		i := bytes.Index(body, prefix)
		if i < 0 {
			continue
		}
		line := body[i+1:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		rec, err := csv.NewReader(bytes.NewReader(line)).Read()
		if err != nil || len(rec) != len(registry.Ownership.Columns) {
			_, err := registry.Read(dir, registry.Ownership)
			if err == nil {
				err = errors.New("file_ownership.csv: unreadable row for " + path)
			}
			return nil, err
		}
		row := registry.Row{}
		for k, c := range registry.Ownership.Columns {
			row[c] = rec[k]
		}
		o, err := registry.ParseOwner(row)
		if err != nil {
			return nil, err
		}
		out[path] = o
	}
	return out, nil
}

// manifestSummary is what inventory shows of a manifest: read without the
// schema walk of manifest.Parse (the install checked it; G0A and G0B
// re-check the files), by gjson over bytes checked to be JSON first. Its
// hash is the registry's and the install entry's.
type manifestSummary struct {
	PackageType, SpecID, FrameworkID string
	Assets                           int
}

func summarize(b []byte) (manifestSummary, error) {
	if !gjson.ValidBytes(b) {
		return manifestSummary{}, errors.New("not valid JSON")
	}
	r := gjson.GetManyBytes(b, "package_type", "spec_id", "framework_id", "assets.#")
	if r[3].Type != gjson.Number {
		return manifestSummary{}, errors.New("assets is not an array")
	}
	return manifestSummary{PackageType: r[0].String(), SpecID: r[1].String(), FrameworkID: r[2].String(), Assets: int(r[3].Int())}, nil
}

// readSized is regfile.ReadNoFollow in one read of the size the file
// states (100 manifests of 15 KiB: no buffer regrown for each).
func readSized(path string) ([]byte, error) {
	f, err := regfile.OpenFile(path, os.O_RDONLY|regfile.NoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, st.Size()+1)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		} else if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
