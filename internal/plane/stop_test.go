package plane

// SetStopAfter stops a move after a step (migrate.go's stopAfter), for
// the external tests.
func SetStopAfter(f func(step int) error) { stopAfter = f }
