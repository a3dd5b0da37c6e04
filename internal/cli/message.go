package cli

import (
	"regexp"
	"strings"
	"sync"
)

// goPrefixes are the names Go errors start with by convention (our own
// packages' names, and the standard library's that reach users through
// them): "jcs: offset 0: invalid literal". They help a developer reading a
// log and mean nothing to a user, so the one error path drops them from
// every message it prints. A test holds the list complete against the
// package directories of this module.
var goPrefixes = []string{
	// this module: pkg/ and internal/
	"archive", "atomicfile", "auth", "authcmd", "bare", "bench", "bootstrap", "cli", "clitest", "config", "e2e", "framework", "gate", "gatecmd",
	"install", "installcmd", "jcs", "journal", "keys", "ledger", "ledgercmd", "legacy", "lockfile", "manifest",
	"pgstore", "pgtest", "pkgcmd", "pkgsig", "plane", "regfile", "register", "registry", "schema", "schematest", "snapshot", "spec",
	"stage", "storetest", "testenv", "trust", "workorder", "wocmd",
	"cpv2", "ledgerimport",
	"llm", "provider", "price", "anthropic", "openai", "mock",
	"llmcmd", "llmtest",
	"trace", "tracecmd",
	"mcpcmd",
	"prompt", "prompttest", "llmcmd",
	"route", "routecmd",
	"sdkoverlay",
	// the standard library
	"json", "archive/tar", "tar", "gzip", "flate", "encoding/hex", "strconv", "tlog",
}

// goPrefixRE matches a package prefix at the start of a message or of a
// wrapped part of it (after ": "), nowhere else: "reading ledger: x" keeps
// its words. Compiled on first use, by an error's message: a process that
// succeeds never pays for it (0.08 ms and 77 KB at package init).
var goPrefixRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(^|: )(?:` + strings.Join(goPrefixes, "|") + `): `)
})

// userMessage is msg without Go package prefixes.
func userMessage(msg string) string {
	for { // "jcs: jcs: x" and nested wraps
		out := goPrefixRE().ReplaceAllString(msg, "$1")
		if out == msg {
			return out
		}
		msg = out
	}
}

// closest returns the candidate nearest to word by edit distance, or ""
// when none is near enough to be a likely typo (at most a third of the
// word's length, or 1 for a short word, edits away; a one-letter word is
// too short to guess from).
func closest(word string, candidates []string) string {
	limit := len(word) / 3
	if limit == 0 && len(word) > 1 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes: flag
// names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
