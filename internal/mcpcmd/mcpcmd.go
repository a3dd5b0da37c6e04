// Package mcpcmd is cp-mcp: every verb of every Control Plane binary as a
// Model Context Protocol tool, under the same firewall (DESIGN.md §15).
//
// cp-mcp serve reads JSON-RPC from stdin and writes it to stdout (or, with
// --http, serves stateless streamable HTTP) until stdin closes or the
// process is signalled. Each tool call runs the binary's verb in-process
// (cli.Dispatch) with the server's token, or over HTTP with the request's
// bearer token; its paths are confined to the served plane. Errors met
// before serving are an envelope on stdout and "cp-mcp: error: ..." on
// stderr; exit 0 when the client closed the session or SIGINT or SIGTERM
// stopped the server, 2 for a usage error
// (a bad flag, a non-loopback --http without --allow-remote), 3 for an
// invalid plane, 4 when the address cannot be listened on.
package mcpcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
)

const usage = `cp-mcp: every Control Plane verb as an MCP tool, under the same firewall

Usage:
  cp-mcp serve [--root DIR] [--http ADDR [--allow-remote]]
  cp-mcp serve --list-tools [--format json|text]

Serves the plane at --root (else $CONTROL_PLANE, else the nearest plane above
the working directory) over stdio, or over stateless streamable HTTP at ADDR
(a loopback address unless --allow-remote). Tools are named cp_<tool>_<verb>;
a call's arguments are the verb's request, its structured result the
binary's envelope. Over stdio calls run with CONTROL_PLANE_TOKEN; over HTTP
with the request's Authorization: Bearer token only (none: AUTH_MISSING).
Every path argument must lead inside the plane (MCP_PATH_OUTSIDE_PLANE).

Options:
  --root DIR        the plane to serve (fixed: a tool call cannot name another)
  --http ADDR       serve HTTP at ADDR (host:port) instead of stdio
  --allow-remote    let --http listen on a non-loopback address
  --list-tools      print the tools served and exit
  --format F        json (default) or text, for --list-tools

Exit status:
  0  the client closed the session, or SIGINT/SIGTERM stopped the server (or --list-tools)
  2  usage: a bad flag, a non-loopback --http without --allow-remote
  3  the plane's tier.json is invalid
  4  the address cannot be listened on

Examples:
  cp-mcp serve --root /srv/plane
  CONTROL_PLANE_TOKEN=/run/agent.token cp-mcp serve
  cp-mcp serve --root /srv/plane --http 127.0.0.1:8765
  cp-mcp serve --list-tools --format text
`

// Run is cp-mcp's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		e := cli.AsError(err)
		b, _ := json.Marshal(struct {
			Status string     `json:"status"`
			Error  *cli.Error `json:"error"`
		}{"error", e})
		fmt.Fprintf(stdout, "%s\n", b)
		fmt.Fprintf(stderr, "cp-mcp: error: %s\n", e.Message)
		if e.Hint != "" {
			fmt.Fprintf(stderr, "cp-mcp: hint: %s\n", e.Hint)
		}
		return e.Exit
	}
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stderr, usage)
			return cli.ExitOK
		case "-version", "--version":
			fmt.Fprintf(stdout, `{"status":"ok","result":{"name":"cp-mcp","version":%q,"go":%q}}`+"\n", cli.Version, runtime.Version())
			return cli.ExitOK
		case "serve":
			args = args[1:]
		}
	}
	fs := flag.NewFlagSet("cp-mcp serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", "", "")
	addr := fs.String("http", "", "")
	remote := fs.Bool("allow-remote", false, "")
	list := fs.Bool("list-tools", false, "")
	format := fs.String("format", "json", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return cli.ExitOK
		}
		return fail(cli.Usagef("%v", err).WithHint("run cp-mcp -h"))
	}
	if fs.NArg() > 0 {
		return fail(cli.Usagef("unexpected argument %q (cp-mcp has one verb: serve)", fs.Arg(0)).WithHint("run cp-mcp -h"))
	}
	if *format != "json" && *format != "text" {
		return fail(cli.Usagef("--format %s: want json or text", *format))
	}
	if *list {
		if err := ListTools(stdout, *format); err != nil {
			return fail(err)
		}
		return cli.ExitOK
	}
	// A server runs until told to stop: SIGINT or SIGTERM ends it (exit
	// 0) once the calls in flight have answered.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := cli.ReadEnv()
	dir, err := findRoot(*root, env.Root)
	if err != nil {
		return fail(err)
	}
	var ln net.Listener
	if *addr != "" {
		if err := checkAddr(*addr, *remote); err != nil {
			return fail(err)
		}
		if ln, err = net.Listen("tcp", *addr); err != nil {
			return fail(cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "--http %s: %v", *addr, err))
		}
	}
	s, err := NewServer(Config{Root: dir, Env: env, HTTP: ln != nil, OSUser: osUser()})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return fail(err)
	}
	if ln != nil {
		fmt.Fprintf(stderr, "cp-mcp: serving %s over HTTP at http://%s/\n", dir, ln.Addr())
		if err := s.ServeHTTP(ctx, ln); err != nil {
			return fail(cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "http: %v", err))
		}
		return cli.ExitOK
	}
	d := newDrain(ctx, stdin, stdout)
	t := &mcp.IOTransport{Reader: d, Writer: d}
	if err := s.mcp.Run(ctx, t); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		fmt.Fprintf(stderr, "cp-mcp: error: %v\n", err)
		return cli.ExitUnavailable
	}
	return cli.ExitOK
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid:" + strconv.Itoa(os.Geteuid())
}

// findRoot is the served plane's HO3 root, real: --root, else
// $CONTROL_PLANE, else the nearest ancestor of the working directory
// holding an HO3 tier.json.
func findRoot(arg, env string) (string, error) {
	dir, from := arg, "--root"
	if dir == "" {
		dir, from = env, "$CONTROL_PLANE"
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "working directory: %v", err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if t, err := plane.ReadTier(d); err == nil && t.Tier == "HO3" {
				dir, from = d, "the working directory"
				break
			}
			if filepath.Dir(d) == d {
				return "", cli.Usagef("no plane: give --root DIR, set CONTROL_PLANE, or run inside a plane")
			}
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", cli.Errorf(cli.ExitUsage, "NOT_A_PLANE", "%s %s is not a plane: %v", from, dir, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", cli.Usagef("%s %s: %v", from, dir, err)
	}
	t, err := plane.ReadTier(real)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", cli.Errorf(cli.ExitUsage, "NOT_A_PLANE", "%s %s is not a plane: no tier.json", from, dir)
	case err != nil:
		return "", cli.Errorf(cli.ExitInvalid, "TIER_INVALID", "%s %s: %v", from, dir, err)
	case t.Tier != "HO3":
		return "", cli.Errorf(cli.ExitUsage, "NOT_A_PLANE", "%s %s is the %s tier: cp-mcp serves a whole plane, from its HO3 root", from, dir, t.Tier)
	}
	return real, nil
}

// checkAddr refuses an HTTP address that is not loopback unless remote
// listening was asked for: the server acts as the plane's owner for every
// token holder who reaches it.
func checkAddr(addr string, remote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return cli.Usagef("--http %s: want host:port (127.0.0.1:8765)", addr)
	}
	if remote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return cli.Usagef("--http %s is not a loopback address: the server would take tool calls from the network", addr).
		WithHint("listen on 127.0.0.1 or [::1], or give --allow-remote (behind TLS you terminate)")
}

// ServeHTTP serves stateless streamable HTTP on ln until ctx is done. A
// request without a bearer token that looks like one is refused before the
// MCP layer (401, AUTH_MISSING or AUTH_INVALID).
func (s *Server) ServeHTTP(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// HTTPHandler is the server's HTTP handler: the SDK's stateless streamable
// handler behind the bearer check.
func (s *Server) HTTPHandler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := Bearer(r.Header); err != nil {
			e := cli.AsError(err)
			b, _ := json.Marshal(struct {
				Status string     `json:"status"`
				Error  *cli.Error `json:"error"`
			}{"error", e})
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="cp-mcp"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(append(b, '\n'))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, cli.MaxRequest+1<<20)
		h.ServeHTTP(w, r)
	})
}

// ListTools writes the served tools: one JSON object per line (name,
// tool, verb, action, tier, annotations), or a text table; then the
// host-level verbs that are not tools.
func ListTools(w io.Writer, format string) error {
	ts, err := tools()
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, t := range ts {
			if err := enc.Encode(map[string]any{"name": t.name, "tool": t.tool.Name, "verb": t.verb.Name,
				"action": t.verb.Action, "tier": t.verb.Tier, "read_only": t.readOnly, "destructive": t.destroy}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tVERB\tACTION\tTIER\tHINT")
	for _, t := range ts {
		hint := "additive" // destructiveHint false
		switch {
		case t.readOnly:
			hint = "readOnly"
		case t.destroy:
			hint = "destructive"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", t.name, t.tool.Name, t.verb.Name, t.verb.Action, t.verb.Tier, hint)
	}
	return tw.Flush()
}
