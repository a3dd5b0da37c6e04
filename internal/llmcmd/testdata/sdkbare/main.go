// Command sdkbare is the baseline of cp-llm's benchmarks: the same call
// made with the same SDK (openai-go, no retries) to the same local
// server, with no gateway around it. It makes -n calls in one process and
// prints each answer as a JSON line.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	osdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	base := flag.String("base-url", "", "the server's base URL (with /v1)")
	n := flag.Int("n", 1, "calls to make")
	flag.Parse()
	c := osdk.NewClient(option.WithBaseURL(*base), option.WithAPIKey("none"), option.WithMaxRetries(0))
	ctx := context.Background()
	enc := json.NewEncoder(os.Stdout)
	for range *n {
		r, err := c.Chat.Completions.New(ctx, osdk.ChatCompletionNewParams{Model: "local-model", MaxTokens: osdk.Int(64),
			Messages: []osdk.ChatCompletionMessageParamUnion{osdk.UserMessage("say hi")}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		enc.Encode(map[string]any{"text": r.Choices[0].Message.Content, "usage": r.Usage})
	}
}
