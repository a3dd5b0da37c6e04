// Command sdkinit links the packages the overlay patches and does nothing:
// its init trace (GODEBUG=inittrace=1) shows whether the patch took effect.
package main

import (
	_ "github.com/anthropics/anthropic-sdk-go/v2"
	_ "github.com/jackc/pgx/v5/pgconn"
	_ "github.com/openai/openai-go/v3"
	_ "github.com/openai/openai-go/v3/responses"
	_ "go.yaml.in/yaml/v4"
)

func main() {}
