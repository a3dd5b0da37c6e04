package apijson

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/tidwall/gjson"
)

/********************/
/* Validating Enums */
/********************/

type validationEntry struct {
	field       reflect.StructField
	legalValues struct {
		strings []string
		// 1 represents true, 0 represents false, -1 represents either
		bools int
		ints  []int64
	}
}

// Patched (Control Plane, third_party/README.md): RegisterFieldValidator runs
// hundreds of times at package init, and building an entry reflects over the
// struct's fields, so it only appends the registration to pendingValidators.
// The first read (fieldValidators) sorts the pending ones by type; a type's
// entries are built when its decoder is first built, so a process pays only
// for the types it decodes. validatorMu guards the three variables.
var (
	validatorMu        sync.Mutex
	pendingValidators  []fieldValidator
	unbuiltValidators  map[reflect.Type][]fieldValidator
	validationRegistry = map[reflect.Type][]validationEntry{}
)

type fieldValidator struct {
	parent    reflect.Type
	fieldName string
	strings   []string
	ints      []int
	bools     []bool
}

func RegisterFieldValidator[T any, V string | bool | int | float64](fieldName string, values ...V) {
	r := fieldValidator{parent: reflect.TypeFor[T](), fieldName: fieldName}
	switch values := any(values).(type) {
	case []string:
		r.strings = values
	case []int:
		r.ints = values
	case []bool:
		r.bools = values
	}
	validatorMu.Lock()
	pendingValidators = append(pendingValidators, r)
	validatorMu.Unlock()
}

// fieldValidators is the read of validationRegistry[t], safe for concurrent
// decoders: it builds t's entries on first use, in registration order.
func fieldValidators(t reflect.Type) []validationEntry {
	runDeferred()
	validatorMu.Lock()
	defer validatorMu.Unlock()
	if len(pendingValidators) > 0 {
		if unbuiltValidators == nil {
			unbuiltValidators = make(map[reflect.Type][]fieldValidator, len(pendingValidators))
		}
		for _, r := range pendingValidators {
			unbuiltValidators[r.parent] = append(unbuiltValidators[r.parent], r)
		}
		pendingValidators = nil
	}
	if pending, ok := unbuiltValidators[t]; ok {
		delete(unbuiltValidators, t)
		for _, r := range pending {
			validationRegistry[t] = append(validationRegistry[t], r.build())
		}
	}
	return validationRegistry[t]
}

// build is upstream's RegisterFieldValidator body, run on first use.
func (r fieldValidator) build() validationEntry {
	parentType := r.parent

	// The following checks ran at initialization time upstream,
	// it is impossible for them to panic if any tests pass.
	if parentType.Kind() != reflect.Struct {
		panic(fmt.Sprintf("apijson: cannot initialize validator for non-struct %s", parentType.String()))
	}

	var field reflect.StructField
	found := false
	for i := 0; i < parentType.NumField(); i++ {
		ptag, ok := parseJSONStructTag(parentType.Field(i))
		if ok && ptag.name == r.fieldName {
			field = parentType.Field(i)
			found = true
			break
		}
	}

	if !found {
		panic(fmt.Sprintf("apijson: cannot find field %s in struct %s", r.fieldName, parentType.String()))
	}

	newEntry := validationEntry{field: field}
	newEntry.legalValues.bools = -1 // default to either

	switch {
	case r.strings != nil:
		newEntry.legalValues.strings = r.strings
	case r.ints != nil:
		newEntry.legalValues.ints = make([]int64, len(r.ints))
		for i, value := range r.ints {
			newEntry.legalValues.ints[i] = int64(value)
		}
	case r.bools != nil:
		for i, value := range r.bools {
			var next int
			if value {
				next = 1
			}
			if i > 0 && newEntry.legalValues.bools != next {
				newEntry.legalValues.bools = -1 // accept either
				break
			}
			newEntry.legalValues.bools = next
		}
	}
	return newEntry
}

func (state *decoderState) validateString(v reflect.Value) {
	if state.validator == nil {
		return
	}
	if !slices.Contains(state.validator.legalValues.strings, v.String()) {
		state.exactness = loose
	}
}

func (state *decoderState) validateInt(v reflect.Value) {
	if state.validator == nil {
		return
	}
	if !slices.Contains(state.validator.legalValues.ints, v.Int()) {
		state.exactness = loose
	}
}

func (state *decoderState) validateBool(v reflect.Value) {
	if state.validator == nil {
		return
	}
	b := v.Bool()
	if state.validator.legalValues.bools == 1 && !b {
		state.exactness = loose
	} else if state.validator.legalValues.bools == 0 && b {
		state.exactness = loose
	}
}

func (state *decoderState) validateOptKind(node gjson.Result, t reflect.Type) {
	switch node.Type {
	case gjson.JSON:
		state.exactness = loose
	case gjson.Null:
		return
	case gjson.False, gjson.True:
		if t.Kind() != reflect.Bool {
			state.exactness = loose
		}
	case gjson.Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return
		default:
			state.exactness = loose
		}
	case gjson.String:
		if t.Kind() != reflect.String {
			state.exactness = loose
		}
	}
}
