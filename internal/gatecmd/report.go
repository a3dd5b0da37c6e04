package gatecmd

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/control-plane/cp/internal/gate"
)

func itoa(n int) string { return strconv.Itoa(n) }

// text renders a verdict for people: a line per gate, then its findings.
func text(w io.Writer, result any) error {
	v := result.(*Verdict)
	if err := gate.WriteText(w, v.Results); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, summary(v))
	return err
}

// SARIF 2.1.0 (OASIS): one run, one rule per error or warning code, one
// result per finding, located by its plane-relative path. The gates'
// verdicts, those that found nothing included, are in the run's properties.
// Nothing in it depends on the time or the machine.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool struct {
		Driver struct {
			Name           string      `json:"name"`
			InformationURI string      `json:"informationUri"`
			Rules          []sarifRule `json:"rules"`
		} `json:"driver"`
	} `json:"tool"`
	Results    []sarifResult  `json:"results"`
	Properties map[string]any `json:"properties"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	Level      string          `json:"level"`
	Message    sarifMessage    `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI       string `json:"uri"`
			URIBaseID string `json:"uriBaseId"`
		} `json:"artifactLocation"`
	} `json:"physicalLocation"`
}

func sarif(w io.Writer, result any) error {
	v := result.(*Verdict)
	run := sarifRun{Results: []sarifResult{}}
	run.Tool.Driver.Name = "cp-gate"
	run.Tool.Driver.InformationURI = "https://control-plane.dev/gates"
	rules := map[string]string{}
	var gates []map[string]any
	add := func(r gate.Result, f gate.Finding, level string) {
		if _, ok := rules[f.Code]; !ok {
			rules[f.Code] = r.Gate
		}
		res := sarifResult{RuleID: f.Code, Level: level, Message: sarifMessage{f.Message},
			Properties: map[string]any{"gate": r.Gate}}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = f.Path
		loc.PhysicalLocation.ArtifactLocation.URIBaseID = "PLANE_ROOT"
		res.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, res)
	}
	for _, r := range v.Results {
		for _, f := range r.Errors {
			add(r, f, "error")
		}
		for _, f := range r.Warnings {
			add(r, f, "warning")
		}
		g := map[string]any{"gate": r.Gate, "passed": r.Passed, "message": r.Message}
		if a, ok := r.Details["applicable"]; ok {
			g["applicable"] = a
		}
		gates = append(gates, g)
	}
	run.Tool.Driver.Rules = []sarifRule{}
	codes := make([]string, 0, len(rules))
	for c := range rules {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: c, ShortDescription: sarifMessage{c + " (gate " + rules[c] + ")"}})
	}
	run.Properties = map[string]any{"plane_id": v.PlaneID, "all_passed": v.AllPassed, "gates": gates}
	if v.Archive != "" {
		run.Properties["archive"] = v.Archive
	}
	b, err := json.MarshalIndent(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// JUnit XML: a test case per gate; a failed gate is a failure whose type is
// its first code and whose text lists every finding; a gate that does not
// apply is skipped.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

func junit(w io.Writer, result any) error {
	v := result.(*Verdict)
	s := junitSuite{Name: "cp-gate " + v.Verb + " " + v.PlaneID}
	for _, r := range v.Results {
		c := junitCase{ClassName: "cp-gate." + v.PlaneID, Name: r.Gate}
		switch {
		case !r.Passed:
			f := &junitFailure{Message: r.Message, Type: "GATE_FAILED"}
			if len(r.Errors) > 0 {
				f.Type = r.Errors[0].Code
			}
			for _, e := range r.Errors {
				f.Text += e.Code + " " + e.Path + ": " + e.Message + "\n"
			}
			c.Failure = f
			s.Failures++
		case r.Details["applicable"] == false:
			c.Skipped = &junitSkipped{Message: r.Message}
			s.Skipped++
		default:
			c.SystemOut = r.Message
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	all := junitSuites{Name: "cp-gate", Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Suites: []junitSuite{s}}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, b)
	return err
}
