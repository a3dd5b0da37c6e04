package plane

// ForgetSigner drops the cached checkpoint signer of plane name, as a new
// process would start without it.
func ForgetSigner(name string) { forget(name) }
