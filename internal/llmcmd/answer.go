package llmcmd

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/llm"
)

// answer is complete's result as its envelope carries it: the
// *llm.Result, encoded field by field (cli.JSONAppender) into exactly the
// bytes encoding/json would give it without HTML escaping
// (TestAnswerJSON, FuzzAnswerJSON), but without building encoding/json's
// reflection tables for Result and the types in it, which a one-call
// process would build once, for this one value (about 0.25 ms).
type answer struct{ *llm.Result }

// AppendJSON appends the result as a JSON object.
func (a answer) AppendJSON(b []byte) []byte {
	r := a.Result
	b = append(b, `{"text":`...)
	b = cli.AppendJSONString(b, r.Text)
	if r.Output != nil {
		b = append(b, `,"output":`...)
		b = appendAny(b, r.Output)
	}
	b = appendStr(b, "prompt_sha256", r.PromptSHA256)
	if r.SystemSHA256 != "" {
		b = appendStr(b, "system_sha256", r.SystemSHA256)
	}
	b = appendStr(b, "response_sha256", r.ResponseSHA256)
	b = append(b, `,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, r.Usage.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, r.Usage.OutputTokens, 10)
	if r.Usage.Estimated {
		b = append(b, `,"estimated":true`...)
	}
	b = append(b, '}')
	b = appendInt(b, "cost_micro_usd", r.CostMicroUSD)
	b = appendInt(b, "reserved_micro_usd", r.ReservedMicroUSD)
	b = appendStr(b, "reservation_id", r.ReservationID)
	b = appendStr(b, "provider_id", r.ProviderID)
	b = appendStr(b, "model", r.Model)
	b = appendStr(b, "request_model", r.RequestModel)
	b = append(b, `,"finish_reasons":`...)
	if r.FinishReasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, f := range r.FinishReasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = cli.AppendJSONString(b, f)
		}
		b = append(b, ']')
	}
	b = append(b, `,"attempts":`...)
	if r.Attempts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, at := range r.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"status":`...)
			b = strconv.AppendInt(b, int64(at.Status), 10)
			if at.Error != "" {
				b = appendStr(b, "error", at.Error)
			}
			if at.WaitMS != 0 {
				b = appendInt(b, "wait_ms", at.WaitMS)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	for _, f := range [...]struct{ k, v string }{{"prompt_pack_id", r.PromptPackID}, {"prompt_pack_version", r.PromptVersion},
		{"work_order_id", r.WorkOrderID}, {"session_id", r.SessionID}} {
		if f.v != "" {
			b = appendStr(b, f.k, f.v)
		}
	}
	if len(r.Budgets) > 0 {
		b = append(b, `,"budgets":[`...)
		for i, bg := range r.Budgets {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"scope":`...)
			b = cli.AppendJSONString(b, bg.Scope)
			if bg.Key != "" {
				b = appendStr(b, "key", bg.Key)
			}
			b = append(b, `,"limit":{`...)
			first := true
			for _, l := range [...]struct {
				k string
				v *int64
			}{{"calls", bg.Limit.Calls}, {"tokens", bg.Limit.Tokens}, {"micro_usd", bg.Limit.MicroUSD}} {
				if l.v == nil {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = append(b, '"')
				b = append(b, l.k...)
				b = append(b, `":`...)
				b = strconv.AppendInt(b, *l.v, 10)
			}
			b = append(b, `},"spent":{"calls":`...)
			b = strconv.AppendInt(b, bg.Spent.Calls, 10)
			b = appendInt(b, "tokens", bg.Spent.Tokens)
			b = appendInt(b, "micro_usd", bg.Spent.MicroUSD)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	if len(r.Bodies) > 0 {
		b = append(b, `,"bodies":{`...)
		keys := make([]string, 0, len(r.Bodies))
		for k := range r.Bodies {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = cli.AppendJSONString(b, k)
			b = append(b, ':')
			b = cli.AppendJSONString(b, r.Bodies[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"duration_ms":`...)
	b = appendFloat(b, r.DurationMS)
	b = appendStr(b, "ledger_entry_id", r.LedgerEntryID)
	b = appendInt(b, "seq", r.Seq)
	return append(b, '}')
}

func appendStr(b []byte, k, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return cli.AppendJSONString(b, v)
}

func appendInt(b []byte, k string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendFloat is encoding/json's encoding of a float64 (a duration: never
// NaN or infinite).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendAny encodes structured output (a value decoded from JSON: maps,
// slices, strings, numbers, booleans, null) as encoding/json does without
// HTML escaping; such a value always encodes.
func appendAny(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return append(b, "null"...)
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
