package cpv2

import "github.com/control-plane/cp/internal/cpv2/ledgerimport"

// ImportError is an import or stage refused (ledgerimport's: one type for
// the refusals of the checkout import, staging and the legacy ledgers).
type ImportError = ledgerimport.ImportError

// LedgerImport is what importing one legacy ledger did.
type LedgerImport = ledgerimport.LedgerImport

// The event types of an imported legacy ledger.
const (
	EventLegacyEntry    = ledgerimport.EventLegacyEntry
	EventLegacyImported = ledgerimport.EventLegacyImported
)

func refusef(code, format string, args ...any) *ImportError {
	return ledgerimport.Refusef(code, format, args...)
}
