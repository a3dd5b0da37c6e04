package llm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Exporter sends one OpenTelemetry span per call to an OTLP/HTTP
// collector, as JSON (POST <endpoint>/v1/traces), with the standard
// library: the OpenTelemetry SDK would cost every gateway process its
// start-up for one request per call. The span carries the LLM_CALL
// entry's attributes (the gen_ai.* names of DESIGN.md §9, the hashes, the
// cost, the entry's id).
type Exporter struct {
	// URL is the traces endpoint.
	URL     string
	Headers map[string]string
	Client  *http.Client
	Timeout time.Duration
	// Service is the resource's service.name.
	Service string
}

// NewExporter returns the exporter the OTEL_EXPORTER_OTLP_* variables
// (read through getenv) configure, or nil when neither
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT is
// set. The traces endpoint is used as given; the general one gets
// /v1/traces appended.
func NewExporter(getenv func(string) string, service string) (*Exporter, error) {
	u := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if u == "" {
		base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		if base == "" {
			return nil, nil
		}
		u = strings.TrimRight(base, "/") + "/v1/traces"
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q is not an http(s) URL", u)
	}
	e := &Exporter{URL: u, Headers: map[string]string{}, Timeout: 2 * time.Second, Service: service}
	for _, kv := range strings.Split(getenv("OTEL_EXPORTER_OTLP_HEADERS"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) != "" {
			dk, _ := url.QueryUnescape(strings.TrimSpace(k))
			dv, _ := url.QueryUnescape(strings.TrimSpace(v))
			e.Headers[dk] = dv
		}
	}
	if ms, err := strconv.Atoi(getenv("OTEL_EXPORTER_OTLP_TIMEOUT")); err == nil && ms > 0 {
		e.Timeout = time.Duration(ms) * time.Millisecond
	}
	return e, nil
}

// export sends r's span; a failure is a warning.
func (g *Gateway) export(ctx context.Context, r *Result) {
	if g.Exporter == nil {
		return
	}
	if err := g.Exporter.Export(context.WithoutCancel(ctx), r); err != nil {
		g.warnf("OTLP export to %s failed (the call stands, recorded in the ledger): %v", g.Exporter.URL, err)
	}
}

// Export posts r as one span.
func (e *Exporter) Export(ctx context.Context, r *Result) error {
	b, err := json.Marshal(e.payload(r, time.Now()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.Headers {
		req.Header.Set(k, v)
	}
	c := e.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s", resp.Status)
	}
	return nil
}

type otlpValue map[string]any

func attr(k string, v any) map[string]any {
	var val otlpValue
	switch x := v.(type) {
	case string:
		val = otlpValue{"stringValue": x}
	case int64:
		val = otlpValue{"intValue": strconv.FormatInt(x, 10)}
	case float64:
		val = otlpValue{"doubleValue": x}
	case bool:
		val = otlpValue{"boolValue": x}
	case []string:
		vs := make([]any, len(x))
		for i, s := range x {
			vs[i] = otlpValue{"stringValue": s}
		}
		val = otlpValue{"arrayValue": map[string]any{"values": vs}}
	}
	return map[string]any{"key": k, "value": val}
}

// SpanAttributes are the attributes of r's span: those of its LLM_CALL
// entry.
func SpanAttributes(r *Result, providerKind string) []map[string]any {
	as := []map[string]any{
		attr("gen_ai.operation.name", "chat"),
		attr("gen_ai.provider.name", providerKind),
		attr("gen_ai.request.model", r.RequestModel),
		attr("gen_ai.response.model", r.Model),
		attr("gen_ai.usage.input_tokens", r.Usage.InputTokens),
		attr("gen_ai.usage.output_tokens", r.Usage.OutputTokens),
		attr("gen_ai.response.finish_reasons", r.FinishReasons),
		attr("cp.provider_id", r.ProviderID),
		attr("cp.prompt_sha256", r.PromptSHA256),
		attr("cp.response_sha256", r.ResponseSHA256),
		attr("cp.cost_micro_usd", r.CostMicroUSD),
		attr("cp.reservation_id", r.ReservationID),
		attr("cp.ledger_entry_id", r.LedgerEntryID),
		attr("cp.ledger_seq", r.Seq),
		attr("cp.attempts", int64(len(r.Attempts))),
	}
	if r.PromptPackID != "" {
		as = append(as, attr("cp.prompt_pack_id", r.PromptPackID), attr("cp.prompt_pack_version", r.PromptVersion))
	}
	if r.WorkOrderID != "" {
		as = append(as, attr("cp.work_order_id", r.WorkOrderID))
	}
	if r.SessionID != "" {
		as = append(as, attr("cp.session_id", r.SessionID))
	}
	return as
}

func (e *Exporter) payload(r *Result, end time.Time) map[string]any {
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	start := end.Add(-time.Duration(r.DurationMS * float64(time.Millisecond)))
	kind, _ := r.Entry.Metadata["gen_ai.provider.name"].(string)
	status := map[string]any{"code": 1} // OK
	if s, _ := r.Entry.Metadata["status"].(string); s != "" && s != StatusOK {
		status = map[string]any{"code": 2, "message": s} // ERROR
	}
	span := map[string]any{
		"traceId":           hex.EncodeToString(tid[:]),
		"spanId":            hex.EncodeToString(sid[:]),
		"name":              "chat " + r.RequestModel,
		"kind":              3, // CLIENT
		"startTimeUnixNano": strconv.FormatInt(start.UnixNano(), 10),
		"endTimeUnixNano":   strconv.FormatInt(end.UnixNano(), 10),
		"attributes":        SpanAttributes(r, kind),
		"status":            status,
	}
	return map[string]any{"resourceSpans": []any{map[string]any{
		"resource": map[string]any{"attributes": []any{attr("service.name", e.Service)}},
		"scopeSpans": []any{map[string]any{
			"scope": map[string]any{"name": "github.com/control-plane/cp/internal/llm"},
			"spans": []any{span},
		}},
	}}}
}
