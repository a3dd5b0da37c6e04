package apijson

import (
	"reflect"
	"sync"

	"github.com/tidwall/gjson"
)

type UnionVariant struct {
	TypeFilter         gjson.Type
	DiscriminatorValue any
	Type               reflect.Type
}

// Patched (Control Plane, third_party/README.md): RegisterUnion and
// RegisterDiscriminatedUnion run hundreds of times at package init, so they
// only append the registration to pendingUnions; the maps are built, presized,
// on the first read (lookupUnion, isUnionVariant), which is when a decoder is
// first built. unionMu guards all three variables.
var (
	unionMu       sync.Mutex
	pendingUnions []unionRegistration
	unionRegistry map[reflect.Type]unionEntry
	unionVariants map[reflect.Type]any
)

type unionRegistration struct {
	typ   reflect.Type
	entry unionEntry
	// marksVariants: the variants' types map back to typ in unionVariants
	// (RegisterUnion; RegisterDiscriminatedUnion does not record them).
	marksVariants bool
}

func registerUnion(r unionRegistration) {
	unionMu.Lock()
	pendingUnions = append(pendingUnions, r)
	unionMu.Unlock()
}

// drainUnionsLocked moves the pending registrations into the maps, in the
// order they were made (a later one replaces an earlier one, as before).
func drainUnionsLocked() {
	if len(pendingUnions) == 0 {
		return
	}
	if unionRegistry == nil {
		variants := 0
		for _, r := range pendingUnions {
			if r.marksVariants {
				variants += len(r.entry.variants)
			}
		}
		unionRegistry = make(map[reflect.Type]unionEntry, len(pendingUnions))
		unionVariants = make(map[reflect.Type]any, variants)
	}
	for _, r := range pendingUnions {
		unionRegistry[r.typ] = r.entry
		if r.marksVariants {
			for _, variant := range r.entry.variants {
				unionVariants[variant.Type] = r.typ
			}
		}
	}
	pendingUnions = nil
}

// Patched (Control Plane, third_party/README.md): the SDK's generated
// package inits that only register unions and field validators are
// renamed by the overlay's generator (internal/sdkoverlay), which adds to
// each such package one init passing them to DeferRegistrations; they run
// at the first read of a registry (runDeferred), not at every process's
// start. deferredMu guards deferred, deferredRan and the two counts.
var (
	deferredMu   sync.Mutex
	deferred     []func()
	deferredRan  bool
	deferredOnce sync.Once
	// deferredCount functions were handed to DeferRegistrations, of
	// which deferredDone have run (DeferredCounts).
	deferredCount, deferredDone int
)

// DeferredCounts reports how many registration functions were handed to
// DeferRegistrations and how many of them have run: the overlay's tests
// (TestDeferredInitsDecode) hold the second zero before a first decode
// and equal to the first after it.
func DeferredCounts() (deferred, ran int) {
	deferredMu.Lock()
	defer deferredMu.Unlock()
	return deferredCount, deferredDone
}

// DeferRegistrations records fns (registration functions) to run before
// the first read of a registry, in the order given; called after that
// read, it runs them at once.
func DeferRegistrations(fns ...func()) {
	deferredMu.Lock()
	deferredCount += len(fns)
	if !deferredRan {
		deferred = append(deferred, fns...)
		deferredMu.Unlock()
		return
	}
	deferredMu.Unlock()
	runCounted(fns)
}

// runCounted runs fns in order, counting each as it returns.
func runCounted(fns []func()) {
	for _, f := range fns {
		f()
		deferredMu.Lock()
		deferredDone++
		deferredMu.Unlock()
	}
}

// runDeferred runs the deferred registrations once; a concurrent caller
// waits until they have run. Every read of a registry calls it first.
func runDeferred() {
	deferredOnce.Do(func() {
		deferredMu.Lock()
		fns := deferred
		deferred, deferredRan = nil, true
		deferredMu.Unlock()
		runCounted(fns)
	})
}

// lookupUnion is the read of unionRegistry[t], safe for concurrent decoders.
func lookupUnion(t reflect.Type) (unionEntry, bool) {
	runDeferred()
	unionMu.Lock()
	defer unionMu.Unlock()
	drainUnionsLocked()
	entry, ok := unionRegistry[t]
	return entry, ok
}

// isUnionVariant is the read of unionVariants[t], safe for concurrent decoders.
func isUnionVariant(t reflect.Type) bool {
	runDeferred()
	unionMu.Lock()
	defer unionMu.Unlock()
	drainUnionsLocked()
	_, ok := unionVariants[t]
	return ok
}

// typeOfZero is reflect.TypeOf(zero T) without boxing a zero T (a large
// struct would be allocated): nil for an interface type, as TypeOf gives.
func typeOfZero[T any]() reflect.Type {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

type unionEntry struct {
	discriminatorKey string
	variants         []UnionVariant
}

func Discriminator[T any](value any) UnionVariant {
	return UnionVariant{
		TypeFilter:         gjson.JSON,
		DiscriminatorValue: value,
		Type:               typeOfZero[T](),
	}
}

func RegisterUnion[T any](discriminator string, variants ...UnionVariant) {
	registerUnion(unionRegistration{
		typ: reflect.TypeFor[T](),
		entry: unionEntry{
			discriminatorKey: discriminator,
			variants:         variants,
		},
		marksVariants: true,
	})
}

// Useful to wrap a union type to force it to use [apijson.UnmarshalJSON] since you cannot define an
// UnmarshalJSON function on the interface itself.
type UnionUnmarshaler[T any] struct {
	Value T
}

func (c *UnionUnmarshaler[T]) UnmarshalJSON(buf []byte) error {
	return UnmarshalRoot(buf, &c.Value)
}
