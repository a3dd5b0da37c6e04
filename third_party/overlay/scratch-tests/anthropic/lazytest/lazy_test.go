// Package lazytest decodes responses of many types from many goroutines at
// the process's first use of the SDK's registries (run with -race).
package lazytest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

const message = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"n","input":{}}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}`

type decodeCase struct {
	body  string
	check func([]byte) error
}

var cases = []decodeCase{
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
