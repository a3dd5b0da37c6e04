// Package lazytest decodes responses of many types from many goroutines at
// the process's first use of the SDK's registries (run with -race).
package lazytest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

type decodeCase struct {
	body  string
	check func([]byte) error
}

var cases = []decodeCase{
	{`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
		func(b []byte) error {
			var v openai.ChatCompletion
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if got := v.Choices[0].Message.ToolCalls[0].Function.Name; got != "f" || v.Usage.TotalTokens != 3 {
				return fmt.Errorf("chat completion: %q %d", got, v.Usage.TotalTokens)
			}
			return nil
		}},
	{`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`,
		func(b []byte) error {
			var v openai.ChatCompletionChunk
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if got := v.Choices[0].Delta.Content; got != "hi" {
				return fmt.Errorf("chunk: %q", got)
			}
			return nil
		}},
	{`{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"hi","finish_reason":"stop","logprobs":null}]}`,
		func(b []byte) error {
			var v openai.Completion
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if got := v.Choices[0].Text; got != "hi" {
				return fmt.Errorf("completion: %q", got)
			}
			return nil
		}},
	{`{"id":"r","object":"response","created_at":1,"model":"m","status":"completed","output":[{"type":"message","id":"m1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hi","annotations":[]}]}]}`,
		func(b []byte) error {
			var v responses.Response
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if len(v.Output) != 1 || v.Output[0].Type != "message" || v.Output[0].ID != "m1" || v.Output[0].Content[0].Text != "hi" {
				return fmt.Errorf("response: %+v", v.Output)
			}
			return nil
		}},
	{`{"type":"response.output_text.delta","delta":"x","item_id":"i","output_index":0,"content_index":0,"sequence_number":1}`,
		func(b []byte) error {
			var v responses.ResponseStreamEventUnion
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if v.Type != "response.output_text.delta" || v.ItemID != "i" {
				return fmt.Errorf("stream event: %q %q", v.Type, v.ItemID)
			}
			return nil
		}},
}

func TestConcurrentFirstUse(t *testing.T) {
	const per = 8
	start := make(chan struct{})
	errs := make(chan error, per*len(cases))
	var wg sync.WaitGroup
	for _, c := range cases {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- c.check([]byte(c.body))
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
