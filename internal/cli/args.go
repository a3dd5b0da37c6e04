package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strconv"
	"strings"
)

// flagBlame turns a schema violation in a field that a flag set into a
// usage error (exit 2): a bad argument, not bad input.
func flagBlame(err error, flagReq Request, flags []Flag) error {
	e := AsError(err)
	probs, _ := e.Details["problems"].([]any)
	if len(probs) == 0 {
		return err
	}
	path, _ := probs[0].(map[string]any)["path"].(string)
	field, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if _, ok := flagReq[field]; !ok || field == "" {
		return err
	}
	e.Exit, e.Code = ExitUsage, "USAGE"
	name := strings.ReplaceAll(field, "_", "-")
	for _, f := range flags {
		if f.Field == field {
			name = f.Name // a flag named otherwise than its field: --session for session_id
		}
	}
	e.Message = strings.Replace(e.Message, "/"+field, "--"+name, 1)
	return e
}

// errHelp is -h met among a verb's flags.
var errHelp = errors.New("help requested")

type commonFlags struct {
	root, format string
	verbose      bool
}

// parseFlags parses args against the verb's flags plus the common ones
// (--root, --format, -v) and returns the request fields they set.
func (r *runner) parseFlags(verb *Verb, args []string) (Request, commonFlags, error) {
	var common commonFlags
	fs := flag.NewFlagSet(r.tool.Name+" "+verb.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&common.root, "root", "", "plane root")
	fs.StringVar(&common.format, "format", "", "json|text")
	fs.BoolVar(&common.verbose, "v", false, "verbose")
	vals := defineFlags(fs, verb.Flags)
	pos, err := r.parseArgs(fs, verb, args)
	if err != nil {
		return nil, common, err
	}
	req, err := vals.request(fs, verb.Flags)
	if err != nil {
		return nil, common, err
	}
	if err := r.positional(verb, pos, req); err != nil {
		return nil, common, err
	}
	return req, common, nil
}

// flagValues holds the values a verb's flags parse into, by flag name.
type flagValues struct {
	strings map[string]*string
	bools   map[string]*bool
	multis  map[string]*[]any
}

// defineFlags defines the verb's flags on fs.
func defineFlags(fs *flag.FlagSet, flags []Flag) flagValues {
	v := flagValues{strings: map[string]*string{}, bools: map[string]*bool{}, multis: map[string]*[]any{}}
	for _, f := range flags {
		switch f.Kind {
		case Bool:
			v.bools[f.Name] = fs.Bool(f.Name, false, f.Usage)
		case Multi:
			vals := &[]any{}
			v.multis[f.Name] = vals
			fs.Func(f.Name, f.Usage, func(s string) error { *vals = append(*vals, s); return nil })
		default:
			v.strings[f.Name] = fs.String(f.Name, "", f.Usage)
		}
	}
	return v
}

// parseArgs parses args with fs and returns the positional arguments:
// they may come before, between or after flags (cp-pkg stage PKG-X --src
// dir); "--" ends flag parsing.
func (r *runner) parseArgs(fs *flag.FlagSet, verb *Verb, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			msg := err.Error()
			hint := "run " + r.tool.Name + " -h"
			if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag --" + strings.TrimLeft(f, "-")
				var names []string
				fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
				if near := closest(strings.TrimLeft(f, "-"), names); near != "" {
					hint = "did you mean --" + near + "?"
				}
			}
			return nil, Usagef("%s: %s", verb.Name, msg).WithHint("%s", hint)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// request returns the request fields the flags given on the command line
// set, each as its kind says.
func (v flagValues) request(fs *flag.FlagSet, flags []Flag) (Request, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	req := Request{}
	for _, f := range flags {
		if !set[f.Name] {
			continue
		}
		field := f.Field
		if field == "" {
			field = snake(f.Name)
		}
		switch f.Kind {
		case Bool:
			req[field] = *v.bools[f.Name]
		case Multi:
			req[field] = *v.multis[f.Name]
		case String:
			req[field] = *v.strings[f.Name]
		case Int:
			s := *v.strings[f.Name]
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return nil, Usagef("--%s: want an integer, got %q", f.Name, s)
			}
			req[field] = json.Number(s)
		case List:
			items := []any{}
			for _, p := range strings.Split(*v.strings[f.Name], ",") {
				if p = strings.TrimSpace(p); p != "" {
					items = append(items, p)
				}
			}
			req[field] = items
		case JSON:
			val, err := decodeValue([]byte(*v.strings[f.Name]))
			if err != nil {
				return nil, Usagef("--%s is not valid JSON: %s", f.Name, strings.TrimPrefix(AsError(err).Message, "stdin is not valid JSON: "))
			}
			req[field] = val
		}
	}
	return req, nil
}

// positional puts the positional arguments into the request fields the
// verb names (Args, then Rest).
func (r *runner) positional(verb *Verb, pos []string, req Request) error {
	if len(pos) > len(verb.Args) && verb.Rest != "" {
		rest, _ := req[verb.Rest].([]any)
		for _, a := range pos[len(verb.Args):] {
			rest = append(rest, a)
		}
		req[verb.Rest], pos = rest, pos[:len(verb.Args)]
	}
	if len(pos) > len(verb.Args) {
		return Usagef("%s: unexpected argument %q", verb.Name, pos[len(verb.Args)]).WithHint("run %s -h", r.tool.Name)
	}
	for i, a := range pos {
		req[verb.Args[i]] = a
	}
	return nil
}

// formatArg returns the value of a --format flag among args, or "": an
// error met before the flags are parsed is shown in the format asked for.
func formatArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "format" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// afterCommonFlags returns the index of the first argument after a run of
// the flags every verb takes (--root DIR, --format F, -v), or len(args).
func afterCommonFlags(args []string) int {
	i := 0
	for i < len(args) {
		name, hasValue := strings.TrimLeft(args[i], "-"), strings.Contains(args[i], "=")
		if !strings.HasPrefix(args[i], "-") {
			return i
		}
		name, _, _ = strings.Cut(name, "=")
		switch {
		case name == "v":
			i++
		case (name == "root" || name == "format") && hasValue:
			i++
		case name == "root" || name == "format":
			i += 2
		default:
			return len(args)
		}
	}
	return len(args)
}

func (t *Tool) verb(name string) *Verb {
	for _, v := range t.Verbs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// verbAt returns the verb named at args[i] and how many words name it: a
// verb of two words ("trust add") is the verb "trust-add" (DESIGN.md §3).
func (t *Tool) verbAt(args []string, i int) (*Verb, int) {
	if i+1 < len(args) {
		if v := t.verb(args[i] + "-" + args[i+1]); v != nil {
			return v, 2
		}
	}
	return t.verb(args[i]), 1
}

// defaultTakes reports whether word, first on the command line and not a
// verb, is the default verb's first positional argument. A word shaped like
// a verb (lower-case letters and hyphens) never is: a mistyped verb is
// reported as one.
func (t *Tool) defaultTakes(word string) bool {
	if t.NoDefault || len(t.Verbs) == 0 || len(t.Verbs[0].Args) == 0 {
		return false
	}
	for _, c := range word {
		if !('a' <= c && c <= 'z' || c == '-') {
			return true
		}
	}
	return false
}

// nearVerb is the hint for a mistyped verb: the nearest verb, or -h.
func (t *Tool) nearVerb(word string) string {
	names := make([]string, len(t.Verbs))
	for i, v := range t.Verbs {
		names[i] = v.Name
	}
	if near := closest(word, names); near != "" {
		return "did you mean " + t.Name + " " + near + "?"
	}
	return "run " + t.Name + " -h"
}

func (t *Tool) verbNames() string {
	names := make([]string, len(t.Verbs))
	for i, v := range t.Verbs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}
