package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// This file builds archives for the tests: a hand-crafted tar writer that
// can express anything the format can carry (trailing slashes on files,
// lying sizes, sparse and unknown type flags, PAX records), and the hostile
// corpus used by the table test and as fuzz seeds.

const manifestBody = `{"id":"PKG-TEST","version":"1.0.0"}`

// rawMember is one member for rawTar.
type rawMember struct {
	name     string
	typ      byte
	mode     int64
	size     int64 // declared size; -1 means len(body)
	body     []byte
	linkname string
	pax      map[string]string // records of an 'x' header written before it
	gnu      bool              // GNU magic instead of USTAR
}

func file(name, body string) rawMember {
	return rawMember{name: name, typ: tar.TypeReg, mode: 0o644, size: -1, body: []byte(body)}
}

func dir(name string) rawMember {
	return rawMember{name: name, typ: tar.TypeDir, mode: 0o755}
}

func special(name string, typ byte) rawMember {
	return rawMember{name: name, typ: typ, mode: 0o644}
}

func manifest() rawMember { return file(ManifestName, manifestBody) }

// rawHeader returns one 512-byte tar header block.
func rawHeader(m rawMember) []byte {
	b := make([]byte, 512)
	size := m.size
	if size < 0 {
		size = int64(len(m.body))
	}
	copy(b[0:100], m.name)
	copy(b[100:108], fmt.Sprintf("%07o\x00", m.mode))
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = m.typ
	copy(b[157:257], m.linkname)
	if m.gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s)
	for {
		m := len(strconv.Itoa(n)) + len(s)
		if m == n {
			return strconv.Itoa(n) + s
		}
		n = m
	}
}

// rawTar writes members, then the end-of-archive marker if end is set.
func rawTar(end bool, ms ...rawMember) []byte {
	var out []byte
	for _, m := range ms {
		if len(m.pax) > 0 {
			var recs strings.Builder
			keys := make([]string, 0, len(m.pax))
			for k := range m.pax {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				recs.WriteString(paxRecord(k, m.pax[k]))
			}
			out = append(out, rawHeader(rawMember{name: "PaxHeader", typ: tar.TypeXHeader, mode: 0o644, size: -1, body: []byte(recs.String())})...)
			out = append(out, pad([]byte(recs.String()))...)
		}
		out = append(out, rawHeader(m)...)
		out = append(out, pad(slices.Clone(m.body))...)
	}
	if end {
		out = append(out, make([]byte, 1024)...)
	}
	return out
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// tgz is a complete archive of the members.
func tgz(ms ...rawMember) []byte { return gz(rawTar(true, ms...)) }

// stdMember is one member for stdTgz.
type stdMember struct {
	hdr  tar.Header
	body string
}

// stdTgz writes an archive with archive/tar's own writer.
func stdTgz(ms ...stdMember) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if h.Mode == 0 && h.Typeflag != tar.TypeXGlobalHeader {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(m.body)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	zw.Close()
	return buf.Bytes()
}

func stdFile(name, body string) stdMember {
	return stdMember{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name}, body: body}
}

// hostile is one archive every reader must refuse with rule. evil lists
// paths, relative to the parent of the staging dir, that must not exist
// afterwards.
type hostile struct {
	name string
	rule string
	lim  Limits
	evil []string
	// data builds the archive; parent is the absolute parent of the
	// staging dir, for cases that aim at it.
	data func(parent string) []byte
}

func fixed(b []byte) func(string) []byte { return func(string) []byte { return b } }

func hostileCorpus() []hostile {
	valid := tgz(manifest(), file("lib/x.py", "print(1)\n"))
	truncGzip := valid[:len(valid)-6]
	badCRC := slices.Clone(valid)
	badCRC[len(badCRC)-8] ^= 0xff
	badHeader := rawTar(true, manifest(), file("lib/x.py", "x"))
	badHeader[512*2+148] ^= 0x01 // checksum of the second header
	// A gzip header followed by a deflate block of the reserved type 3.
	corruptDeflate := append(slices.Clone(valid[:10]), 0x07, 0, 0, 0, 0)

	sparseMap := rawMember{
		name: "big", typ: tar.TypeReg, mode: 0o644, size: -1,
		body: pad([]byte("0\n")), // sparse map: no data fragments
		pax: map[string]string{
			"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
			"GNU.sparse.name": "big", "GNU.sparse.realsize": "1000000",
		},
	}
	oldSparse := special("sparse", tar.TypeGNUSparse)
	oldSparse.gnu = true

	sizeLie := file("lib/x.py", "0123456789")
	sizeLie.size = 4096

	dirWithData := dir("lib/")
	dirWithData.size = 512
	dirWithData.body = make([]byte, 512)

	bigManifest := file(ManifestName, strings.Repeat(" ", 200))

	longName := strings.Repeat("a", 300)

	two := gz(rawTar(true, manifest()))
	secondMember := append(slices.Clone(two), gz([]byte("more"))...)

	return []hostile{
		{name: "empty input", rule: "not_gzip", data: fixed(nil)},
		{name: "plain tar", rule: "not_gzip", data: fixed(rawTar(true, manifest()))},
		{name: "text", rule: "not_gzip", data: fixed([]byte("hello, world\n"))},
		{name: "truncated gzip", rule: "truncated", data: fixed(truncGzip)},
		{name: "truncated tar", rule: "truncated", data: fixed(gz(rawTar(true, manifest(), file("lib/x.py", strings.Repeat("x", 2000)))[:512*3+100]))},
		{name: "header size lies", rule: "truncated", data: fixed(gz(rawTar(false, manifest(), sizeLie)))},
		{name: "no end marker", rule: "truncated", data: fixed(gz(rawTar(false, manifest())))},
		{name: "half end marker", rule: "truncated", data: fixed(gz(append(rawTar(false, manifest()), make([]byte, 512)...)))},
		{name: "bad gzip crc", rule: "corrupt_gzip", data: fixed(badCRC)},
		{name: "corrupt deflate", rule: "corrupt_gzip", data: fixed(corruptDeflate)},
		{name: "bad tar checksum", rule: "corrupt_tar", data: fixed(gz(badHeader))},
		{name: "nul in pax path", rule: "corrupt_tar", data: fixed(tgz(manifest(), rawMember{name: "x", typ: tar.TypeReg, size: -1, pax: map[string]string{"path": "a\x00b"}}))},
		{name: "garbage after end marker", rule: "trailing_data", data: fixed(gz(append(rawTar(true, manifest()), "junk"...)))},
		{name: "second gzip member", rule: "trailing_data", data: fixed(secondMember)},
		{name: "garbage after gzip", rule: "trailing_data", data: fixed(append(slices.Clone(two), 0))},
		{
			name: "symlink out", rule: "symlink", evil: []string{"evil"},
			data: fixed(stdTgz(stdFile(ManifestName, manifestBody),
				stdMember{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "evil", Linkname: "../evil"}},
				stdFile("evil/pwned", "x"))),
		},
		{
			name: "symlink absolute", rule: "symlink", evil: []string{"evil"},
			data: func(parent string) []byte {
				return stdTgz(stdFile(ManifestName, manifestBody),
					stdMember{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: parent}},
					stdFile("link/evil", "x"))
			},
		},
		{
			name: "hardlink", rule: "hardlink", evil: []string{"evil"},
			data: func(parent string) []byte {
				return stdTgz(stdFile(ManifestName, manifestBody),
					stdMember{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: filepath.Join(parent, "evil")}})
			},
		},
		{name: "char device", rule: "device", data: fixed(stdTgz(stdFile(ManifestName, manifestBody), stdMember{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}}))},
		{name: "block device", rule: "device", data: fixed(stdTgz(stdFile(ManifestName, manifestBody), stdMember{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8}}))},
		{name: "fifo", rule: "fifo", data: fixed(stdTgz(stdFile(ManifestName, manifestBody), stdMember{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"}}))},
		{name: "old gnu sparse", rule: "sparse", data: fixed(tgz(manifest(), oldSparse))},
		{name: "pax gnu sparse", rule: "sparse", data: fixed(tgz(manifest(), sparseMap))},
		{name: "unknown typeflag", rule: "unsupported_type", data: fixed(tgz(manifest(), special("z", 'Z')))},
		{name: "contiguous file", rule: "unsupported_type", data: fixed(tgz(manifest(), special("c", tar.TypeCont)))},
		{name: "pax global header", rule: "unsupported_type", data: fixed(stdTgz(stdFile(ManifestName, manifestBody), stdMember{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "x"}}}))},
		{
			name: "absolute name", rule: "absolute_name", evil: []string{"evil"},
			data: func(parent string) []byte { return tgz(manifest(), file(filepath.Join(parent, "evil"), "x")) },
		},
		{name: "absolute slash", rule: "absolute_name", data: fixed(tgz(manifest(), file("/x", "x")))},
		{name: "drive letter", rule: "absolute_name", data: fixed(tgz(manifest(), file("C:/x", "x")))},
		{name: "drive relative", rule: "absolute_name", data: fixed(tgz(manifest(), file("c:x", "x")))},
		{name: "backslash", rule: "absolute_name", data: fixed(tgz(manifest(), file(`lib\x.py`, "x")))},
		{name: "dot dot", rule: "dot_dot", evil: []string{"evil"}, data: fixed(tgz(manifest(), file("../evil", "x")))},
		{name: "dot dot inside", rule: "dot_dot", evil: []string{"evil"}, data: fixed(tgz(manifest(), file("lib/../../evil", "x")))},
		{name: "dot dot dir", rule: "dot_dot", evil: []string{"evil"}, data: fixed(tgz(manifest(), dir("../evil/")))},
		{name: "dot slash", rule: "unclean_name", data: fixed(tgz(manifest(), file("./x", "x")))},
		{name: "double slash", rule: "unclean_name", data: fixed(tgz(manifest(), file("a//b", "x")))},
		{name: "dot element", rule: "unclean_name", data: fixed(tgz(manifest(), file("a/./b", "x")))},
		{name: "file trailing slash", rule: "unclean_name", data: fixed(tgz(manifest(), file("lib/", "x")))},
		{name: "empty name", rule: "unclean_name", data: fixed(tgz(manifest(), file("", "x")))},
		{name: "dot dir", rule: "unclean_name", data: fixed(tgz(manifest(), dir("./")))},
		{name: "control char", rule: "bad_char", data: fixed(tgz(manifest(), file("a\x01b", "x")))},
		{name: "invalid utf8", rule: "bad_char", data: fixed(tgz(manifest(), file("\xff.md", "x")))},
		{name: "name too long", rule: "name_too_long", data: fixed(tgz(manifest(), rawMember{name: "x", typ: tar.TypeReg, size: -1, pax: map[string]string{"path": longName}}))},
		{name: "duplicate file", rule: "duplicate_name", data: fixed(tgz(manifest(), file("lib/x.py", "a"), file("lib/x.py", "b")))},
		{name: "duplicate manifest", rule: "duplicate_name", data: fixed(tgz(manifest(), manifest()))},
		{name: "duplicate dir", rule: "duplicate_name", data: fixed(tgz(manifest(), dir("lib/"), dir("lib/")))},
		{name: "case fold", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("A.md", "a"), file("a.md", "b")))},
		{name: "case fold kelvin", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("\u212a.md", "a"), file("k.md", "b")))},
		{name: "case fold dirs", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("LIB/x", "a"), file("lib/y", "b")))},
		{name: "NFC and NFD twins", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("lib/caf\u00e9.md", "a"), file("lib/cafe\u0301.md", "b")))},
		{name: "NFD twin dirs", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("lib/e\u0301/x", "a"), file("lib/\u00c9/y", "b")))},
		{name: "file then dir prefix", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("lib", "a"), file("lib/x", "b")))},
		{name: "dir prefix then file", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("lib/x", "a"), file("lib", "b")))},
		{name: "dir entry then file", rule: "case_fold_collision", data: fixed(tgz(manifest(), dir("lib/"), file("Lib", "b")))},
		{name: "file then folded prefix", rule: "case_fold_collision", data: fixed(tgz(manifest(), file("Lib", "a"), file("lib/x", "b")))},
		{name: "too many files", rule: "too_many_files", lim: Limits{MaxFiles: 3}, data: fixed(tgz(manifest(), file("a", ""), file("b", ""), file("c", "")))},
		{name: "too many dirs", rule: "too_many_files", lim: Limits{MaxFiles: 2}, data: fixed(tgz(manifest(), dir("a/"), dir("b/")))},
		{name: "file too large", rule: "file_too_large", lim: Limits{MaxFileBytes: 100}, data: fixed(tgz(manifest(), file("a", strings.Repeat("x", 101))))},
		{name: "file size bomb", rule: "file_too_large", data: fixed(gz(rawTar(false, manifest(), rawMember{name: "bomb", typ: tar.TypeReg, size: 1 << 32})))},
		{name: "total too large", rule: "archive_too_large", lim: Limits{MaxTotalBytes: 100}, data: fixed(tgz(manifest(), file("a", strings.Repeat("x", 50)), file("b", strings.Repeat("x", 50))))},
		{name: "stream bomb", rule: "archive_too_large", lim: Limits{MaxFiles: 4, MaxTotalBytes: 1024}, data: fixed(gz(append(rawTar(true, manifest()), make([]byte, 8<<20)...)))},
		{name: "dir with data", rule: "size_mismatch", data: fixed(tgz(manifest(), dirWithData))},
		{name: "reserved ledger", rule: "reserved_target", data: fixed(tgz(manifest(), file("ledger/entries.jsonl", "x")))},
		{name: "reserved case", rule: "reserved_target", data: fixed(tgz(manifest(), file("Installed/x", "x")))},
		{name: "reserved dir", rule: "reserved_target", data: fixed(tgz(manifest(), dir("registries/")))},
		{name: "reserved versions", rule: "reserved_target", data: fixed(tgz(manifest(), file("versions/v", "x")))},
		{name: "reserved store", rule: "reserved_target", data: fixed(tgz(manifest(), file("packages_store/p", "x")))},
		{name: "reserved staging", rule: "reserved_target", data: fixed(tgz(manifest(), file("_staging/p", "x")))},
		{name: "reserved planes", rule: "reserved_target", data: fixed(tgz(manifest(), file("planes/p", "x")))},
		{name: "reserved tier", rule: "reserved_target", data: fixed(tgz(manifest(), file("TIER.json", "{}")))},
		{name: "no manifest", rule: "manifest_missing", data: fixed(tgz(file("lib/x.py", "x")))},
		{name: "empty archive", rule: "manifest_missing", data: fixed(tgz())},
		{name: "non-flat", rule: "manifest_missing", data: fixed(tgz(dir("PKG-X/"), file("PKG-X/manifest.json", manifestBody), file("PKG-X/lib/x.py", "x")))},
		{name: "manifest wrong case", rule: "manifest_missing", data: fixed(tgz(file("Manifest.json", manifestBody)))},
		{name: "manifest dir", rule: "manifest_not_regular", data: fixed(tgz(dir("manifest.json/")))},
		{name: "manifest symlink", rule: "symlink", data: fixed(stdTgz(stdMember{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: ManifestName, Linkname: "/etc/passwd"}}))},
		{name: "manifest too large", rule: "manifest_too_large", lim: Limits{MaxManifestBytes: 100}, data: fixed(tgz(bigManifest))},
	}
}
