// Command sdkdecode decodes responses of many types of both SDKs from many
// goroutines at the process's first use of their registries, whose
// registration inits the overlay defers (TestDeferredInitsDecode builds it
// with the overlay, with -race when cgo is available). It exits 1 on a
// wrong decode. The cases are those of third_party/overlay/scratch-tests.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

const message = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"n","input":{}}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}`

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

	{message, func(b []byte) error {
		var v anthropic.Message
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if len(v.Content) != 2 || v.Content[0].Text != "hi" || v.Content[1].Type != "tool_use" || v.Content[1].Name != "n" || v.Usage.OutputTokens != 2 || v.StopReason != "end_turn" {
			return fmt.Errorf("message: %+v", v)
		}
		return nil
	}},
	{message, func(b []byte) error {
		var v anthropic.BetaMessage
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if len(v.Content) != 2 || v.Content[1].Type != "tool_use" || v.Usage.InputTokens != 1 {
			return fmt.Errorf("beta message: %+v", v)
		}
		return nil
	}},
	{`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"x"}}`, func(b []byte) error {
		var v anthropic.MessageStreamEventUnion
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if v.Type != "content_block_delta" || v.Index != 1 || v.Delta.Type != "text_delta" || v.Delta.Text != "x" {
			return fmt.Errorf("stream event: %+v", v)
		}
		return nil
	}},
	{`{"type":"message_start","message":` + message + `}`, func(b []byte) error {
		var v anthropic.MessageStreamEventUnion
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if v.Type != "message_start" || v.Message.ID != "msg_1" {
			return fmt.Errorf("message start: %+v", v)
		}
		return nil
	}},
	{`{"id":"m","type":"model","display_name":"M","created_at":"2024-01-01T00:00:00Z"}`, func(b []byte) error {
		var v anthropic.ModelInfo
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if v.ID != "m" || v.CreatedAt.Year() != 2024 {
			return fmt.Errorf("model: %+v", v)
		}
		return nil
	}},
}

// deferred fails unless both SDKs' registrations were deferred (some,
// none run yet) or, after, all ran; it returns the two deferred counts.
func deferred(after bool) (int, int, error) {
	od, or := openai.CPDeferredRegistrations()
	ad, ar := anthropic.CPDeferredRegistrations()
	switch {
	case od == 0 || ad == 0:
		return 0, 0, fmt.Errorf("no registration deferred: openai %d, anthropic %d", od, ad)
	case !after && (or != 0 || ar != 0):
		return 0, 0, fmt.Errorf("registrations ran before the first decode: openai %d of %d, anthropic %d of %d", or, od, ar, ad)
	case after && (or != od || ar != ad):
		return 0, 0, fmt.Errorf("registrations not all run after decoding: openai %d of %d, anthropic %d of %d", or, od, ar, ad)
	}
	return od, ad, nil
}

func main() {
	if _, _, err := deferred(false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
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
	failed := false
	for err := range errs {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	od, ad, err := deferred(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
	fmt.Println("ok", len(cases)*per, "deferred", od, ad)
}
