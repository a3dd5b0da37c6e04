package llm

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// A reservation in flight is marked by a lock its caller holds, so that a
// reservation whose caller is gone (killed mid-call: no LLM_CALL will ever
// settle it) can be told from one still in flight, and settled in full by
// the next call that sums it or by recover (StatusAbandoned).
//
// The mark is an open-file-description byte-range lock (Linux's
// F_OFD_SETLK) on one byte of the budget ledger's ledger/llm-inflight.lock,
// at an offset derived from the reservation id: the caller takes it before
// its LLM_RESERVED is appended and holds it until its LLM_CALL is durable;
// the kernel drops it when the caller dies, however it dies (kill -9
// included). Such a lock excludes every other open file description, in
// another process or this one, and the file never grows (a lock past its end
// is a lock like any other). The reservation carries the boot id of the
// kernel whose lock table holds it (inflight_boot_id): only a caller on
// that kernel, the same boot, can judge it; a reservation made on another
// (a PostgreSQL tier shared by several hosts) or before this mark existed
// is never judged abandoned and keeps counting in full.
//
// Fail closed: a caller that cannot take its lock writes no mark (its
// reservation is then never settled by anyone else), and a lock that
// cannot be tested counts as held.

// inflightFile is the lock file beside the budget ledger.
func inflightFile(dir string) string { return filepath.Join(dir, "ledger", "llm-inflight.lock") }

// inflightOffset is the byte reservation rid's lock covers: 62 bits of its
// random part (a collision could only make an abandoned reservation look
// in flight, never the reverse).
func inflightOffset(rid string) (int64, bool) {
	b, err := hex.DecodeString(strings.TrimPrefix(rid, "RSV-"))
	if err != nil || len(b) < 8 || !strings.HasPrefix(rid, "RSV-") {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b) >> 2), true
}

// bootID is this boot of the machine's id ("" where there is none: then
// no reservation is marked, and none is judged).
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if s := strings.TrimSpace(string(b)); err == nil && len(s) >= 32 && len(s) <= 64 {
		return s
	}
	return ""
})
