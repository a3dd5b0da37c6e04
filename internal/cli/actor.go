package cli

import (
	"os"
	"os/user"
	"strconv"
	"sync"
)

// Actor is who asks, as stamped on ledger entries and receipts: the OS user
// while auth is not configured.
var Actor = sync.OnceValue(func() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "uid:" + strconv.Itoa(os.Getuid())
})
