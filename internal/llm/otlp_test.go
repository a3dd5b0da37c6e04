package llm

import (
	"net/url"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNewExporter(t *testing.T) {
	e, err := NewExporter(envOf(nil), "cp-llm")
	if e != nil || err != nil {
		t.Fatalf("no endpoint: %v, %v", e, err)
	}
	e, err = NewExporter(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
		"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret, x-b = 2 ,bad", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}), "cp-llm")
	if err != nil || e.URL != "http://collector:4318/v1/traces" || e.Headers["api-key"] != "s=cret" || e.Headers["x-b"] != "2" || len(e.Headers) != 2 || e.Timeout.Milliseconds() != 500 {
		t.Fatalf("%+v, %v", e, err)
	}
	e, err = NewExporter(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/traces"}), "cp-llm")
	if err != nil || e.URL != "https://b/traces" {
		t.Fatalf("the traces endpoint is used as given: %+v, %v", e, err)
	}
	if _, err := NewExporter(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "file:///etc/passwd"}), "cp-llm"); err == nil {
		t.Fatal("a non-http endpoint is refused")
	}
}

// FuzzNewExporter: any environment yields an exporter to an http(s) URL
// with a host, nothing, or an error; never a panic.
func FuzzNewExporter(f *testing.F) {
	f.Add("http://localhost:4318", "a=b,c=d", "100")
	f.Add("https://x/", "=,==,%zz=1", "-5")
	f.Add("ftp://x", "", "x")
	f.Fuzz(func(t *testing.T, endpoint, headers, timeout string) {
		e, err := NewExporter(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_HEADERS": headers, "OTEL_EXPORTER_OTLP_TIMEOUT": timeout}), "cp-llm")
		if err != nil || e == nil {
			return
		}
		u, perr := url.Parse(e.URL)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || e.Timeout <= 0 {
			t.Fatalf("exporter %+v from %q", e, endpoint)
		}
	})
}
