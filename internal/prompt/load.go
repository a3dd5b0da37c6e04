package prompt

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"
	"syscall"
	"text/template"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/schema"
)

// Pack is a registered prompt pack, loaded and checked against its
// registered hash.
type Pack struct {
	ID        string // prompt_pack_id
	Version   string
	PackageID string // the package that installed it
	Path      string // plane-relative directory: governed_prompts/<ID>
	// SHA256 is the registered pack digest (see the package doc), which
	// the files on disk matched when the pack was loaded.
	SHA256      string
	Status      string // active or deprecated (a retired pack does not load)
	Template    string // the template's file name
	Description string
	Providers   []string
	Models      []string
	MaxTokens   int64
	// Variables is the JSON Schema of the variables (shared: read only).
	Variables map[string]any

	vars *schema.Schema
	text *template.Template
}

// Load returns the registered pack id of the plane at root, read from disk
// now and checked against the row of registries/prompts_registry.csv:
// PROMPT_NOT_FOUND for an id the registry does not list (or lists as
// retired), PROMPT_HASH_MISMATCH when the files' digest is not the
// registered one (the message names the file that changed and both of its
// hashes when file_ownership.csv can tell, and both digests), and
// PROMPT_PACK_INVALID when a file cannot be read as a pack (a link, not a
// regular file, over its cap). An unreadable registry is its own error
// (REGISTRY_INVALID): the pack cannot be vouched for.
func Load(root, id string) (*Pack, error) {
	if !ValidID(id) {
		return nil, newErr(CodeNotFound, id, "", "prompt pack ids look like PRM-NAME-001 (^PRM-[A-Z0-9-]+$)",
			"%q is not a prompt pack id", id)
	}
	rows, err := registry.Read(root, registry.Prompts)
	if err != nil {
		return nil, err
	}
	var row registry.Prompt
	found := false
	for _, r := range rows {
		if r["prompt_pack_id"] == id {
			if row, err = registry.ParsePrompt(r); err != nil {
				return nil, err
			}
			found = true
			break
		}
	}
	switch {
	case !found:
		return nil, newErr(CodeNotFound, id, "", "install a package of type prompt_pack that ships it (cp-trace agent-context lists the registered packs)",
			"prompt pack %s is not registered in %s/%s", id, registry.Dir, registry.Prompts.File)
	case row.Status == registry.StatusRetired:
		return nil, newErr(CodeNotFound, id, row.Path, "use an active pack (cp-trace agent-context lists them)",
			"prompt pack %s is retired", id)
	case row.Path != PackDir(id):
		return nil, newErr(CodeHashMismatch, id, row.Path, hashHint,
			"%s/%s registers %s at %s; a pack lives at %s", registry.Dir, registry.Prompts.File, id, row.Path, PackDir(id))
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for _, d := range []string{Dir, row.Path} {
		fi, err := r.Lstat(d)
		if err != nil {
			return nil, missing(id, d, err)
		}
		if !fi.IsDir() {
			return nil, newErr(CodeInvalid, id, d, hashHint, "%s is a %s, not a directory of the plane", d, kindOf(fi.Mode()))
		}
	}
	packPath := row.Path + "/" + PackFile
	pb, err := readIn(r, id, packPath, MaxPackBytes)
	if err != nil {
		return nil, err
	}
	packSHA := sum(pb)
	sp, perr := parsed.spec(packSHA, pb)
	if perr != nil {
		// The registered pack parsed (the gates saw to it): this one is
		// not it.
		e := mismatch(root, id, row, packPath, packSHA)
		e.Msg += " (it no longer parses: " + perr.Error() + ")"
		return nil, e
	}
	tmplPath := row.Path + "/" + sp.Template
	tb, err := readIn(r, id, tmplPath, MaxTemplateBytes)
	if err != nil {
		return nil, err
	}
	tmplSHA := sum(tb)
	digest, err := Digest(packSHA, sp.Template, tmplSHA)
	if err != nil {
		return nil, err
	}
	if digest != row.SHA256 {
		e := mismatchFiles(root, id, row, map[string]string{packPath: packSHA, tmplPath: tmplSHA})
		e.Details["registered"], e.Details["actual"] = row.SHA256, digest
		if e.Details["file"] == nil {
			e.Msg += ": they hash to " + digest
		}
		return nil, e
	}
	if sp.PromptPackID != id || sp.Version != row.Version {
		return nil, newErr(CodeInvalid, id, packPath, hashHint, "%s declares %s %s; the registry holds %s %s",
			packPath, sp.PromptPackID, sp.Version, id, row.Version)
	}
	t, err := parsed.template(tmplSHA, sp.Template, tb)
	if err != nil {
		return nil, err
	}
	return &Pack{ID: id, Version: row.Version, PackageID: row.PackageID, Path: row.Path, SHA256: row.SHA256, Status: row.Status,
		Template: sp.Template, Description: sp.Description, Providers: slices.Clone(sp.Providers), Models: slices.Clone(sp.Models),
		MaxTokens: sp.MaxTokens, Variables: sp.Variables, vars: sp.vars, text: t}, nil
}

// parsed caches what Parse and ParseTemplate made of given bytes, by their
// hash (and, for a template, its name): Load reads and hashes the files at
// every call, and the same bytes always parse the same way, so only the
// parsing is saved (half of a Load's work), never a check. Bounded: full,
// it starts again empty.
var parsed = &parseCache{specs: map[string]specResult{}, templates: map[string]*template.Template{}}

const parseCacheMax = 256

type specResult struct {
	sp  *Spec
	err error
}

type parseCache struct {
	mu        sync.Mutex
	specs     map[string]specResult
	templates map[string]*template.Template
}

func (c *parseCache) spec(sha string, b []byte) (*Spec, error) {
	c.mu.Lock()
	r, ok := c.specs[sha]
	c.mu.Unlock()
	if ok {
		return r.sp, r.err
	}
	sp, err := Parse(b)
	c.mu.Lock()
	if len(c.specs) >= parseCacheMax {
		clear(c.specs)
	}
	c.specs[sha] = specResult{sp, err}
	c.mu.Unlock()
	return sp, err
}

// template caches templates that parse; an error is not cached.
func (c *parseCache) template(sha, name string, b []byte) (*template.Template, error) {
	key := sha + " " + name
	c.mu.Lock()
	t, ok := c.templates[key]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := ParseTemplate(name, b)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.templates) >= parseCacheMax {
		clear(c.templates)
	}
	c.templates[key] = t
	c.mu.Unlock()
	return t, nil
}

const hashHint = "a governed prompt changes only through a package: stage, sign and install a new version of its prompt_pack package (or cp-install rollback); cp-gate check names every file changed on disk"

// readIn reads the regular file rel under r, following no link, at most
// limit bytes.
func readIn(r *os.Root, id, rel string, limit int64) ([]byte, error) {
	// Lstat first: a link that leaves the root is an error of os.Root's
	// own, not ELOOP; O_NOFOLLOW then closes the race with a link put in
	// place after the check.
	fi, err := r.Lstat(rel)
	if err != nil {
		return nil, missing(id, rel, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, newErr(CodeInvalid, id, rel, hashHint, "%s is a symlink: a pack's files are regular files of the plane", rel)
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, newErr(CodeInvalid, id, rel, hashHint, "%s is a symlink: a pack's files are regular files of the plane", rel)
		}
		return nil, missing(id, rel, err)
	}
	defer f.Close()
	if err := regfile.Check(f); err != nil {
		return nil, newErr(CodeInvalid, id, rel, hashHint, "%s is not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, newErr(CodeInvalid, id, rel, hashHint, "%s is larger than %d bytes", rel, limit)
	}
	return b, nil
}

func missing(id, rel string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		e := newErr(CodeHashMismatch, id, rel, hashHint, "%s of registered prompt pack %s is missing", rel, id)
		e.Details = map[string]any{}
		return e
	}
	return err
}

// mismatch is PROMPT_HASH_MISMATCH for the one file rel, which hashes to
// sha now.
func mismatch(root, id string, row registry.Prompt, rel, sha string) *Error {
	return mismatchFiles(root, id, row, map[string]string{rel: sha})
}

// mismatchFiles builds PROMPT_HASH_MISMATCH for a pack whose files hash
// to got (path → sha256): it names the first file whose hash is not the
// one file_ownership.csv recorded at install, with both hashes; when the
// ownership rows agree with the disk (edited together) or cannot be read,
// it names the registered and the actual digest only.
func mismatchFiles(root, id string, row registry.Prompt, got map[string]string) *Error {
	e := newErr(CodeHashMismatch, id, row.Path, hashHint, "")
	e.Details = map[string]any{}
	owners, _ := registry.Read(root, registry.Ownership)
	installed := map[string]string{}
	for _, o := range owners {
		if _, ok := got[o["path"]]; ok && o["package_id"] == row.PackageID {
			installed[o["path"]] = o["sha256"]
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if want, ok := installed[p]; ok && want != got[p] {
			e.Path = p
			e.Details["file"], e.Details["file_sha256"], e.Details["installed_sha256"] = p, got[p], want
			e.Msg = fmt.Sprintf("prompt pack %s: %s holds %s; %s installed %s (registered pack digest %s)",
				id, p, got[p], row.PackageID, want, row.SHA256)
			return e
		}
	}
	e.Msg = fmt.Sprintf("prompt pack %s: its files no longer hash to the registered pack digest %s", id, row.SHA256)
	return e
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}
