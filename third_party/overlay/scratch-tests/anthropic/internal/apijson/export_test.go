package apijson

import "reflect"

// RegisteredTypes lists every type with a recorded field validator or union
// (Control Plane's lazy-registry patch: a scratch test, not shipped).
func RegisteredTypes() (validators, unions []reflect.Type) {
	validatorMu.Lock()
	seen := map[reflect.Type]bool{}
	add := func(t reflect.Type) {
		if !seen[t] {
			seen[t] = true
			validators = append(validators, t)
		}
	}
	for _, r := range pendingValidators {
		add(r.parent)
	}
	for t := range unbuiltValidators {
		add(t)
	}
	for t := range validationRegistry {
		add(t)
	}
	validatorMu.Unlock()
	unionMu.Lock()
	drainUnionsLocked()
	for t := range unionRegistry {
		unions = append(unions, t)
	}
	unionMu.Unlock()
	return validators, unions
}

func FieldValidatorCount(t reflect.Type) int { return len(fieldValidators(t)) }

func IsUnion(t reflect.Type) bool { _, ok := lookupUnion(t); return ok }
