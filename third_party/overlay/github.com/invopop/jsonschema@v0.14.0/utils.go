package jsonschema

import (
	"regexp"
	"strings"
	"sync"

	orderedmap "github.com/pb33f/ordered-map/v2"
)

// Compiled on first use (ToSnakeCase), not at package init.
var matchFirstCap = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("(.)([A-Z][a-z]+)") })
var matchAllCap = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("([a-z0-9])([A-Z])") })

// ToSnakeCase converts the provided string into snake case using dashes.
// This is useful for Schema IDs and definitions to be coherent with
// common JSON Schema examples.
func ToSnakeCase(str string) string {
	snake := matchFirstCap().ReplaceAllString(str, "${1}-${2}")
	snake = matchAllCap().ReplaceAllString(snake, "${1}-${2}")
	return strings.ToLower(snake)
}

// NewProperties is a helper method to instantiate a new properties ordered
// map.
func NewProperties() *orderedmap.OrderedMap[string, *Schema] {
	return orderedmap.New[string, *Schema]()
}
