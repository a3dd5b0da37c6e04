package provider

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Retry is the one retry loop of every provider (the SDKs' own are
// turned off, so each attempt is seen, counted and recorded).
type Retry struct {
	// MaxAttempts is the number of attempts in all (default 3).
	MaxAttempts int
	// BaseDelay is the pause after the first failure, doubled after each
	// next one (default 500ms), up to MaxDelay (default 20s). A provider's
	// retry-after replaces it; one longer than MaxDelay ends the loop.
	BaseDelay, MaxDelay time.Duration
	// Timeout bounds one attempt (default 10 minutes); a timed-out
	// attempt counts as a failure without a response (retryable).
	Timeout time.Duration
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts < 1 {
		r.MaxAttempts = 3
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 500 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 20 * time.Second
	}
	if r.Timeout <= 0 {
		r.Timeout = 10 * time.Minute
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Do runs attempt until it succeeds, fails in a way no retry can mend
// (a 4xx other than 408, 409 and 429; a final AttemptError; the caller's
// context ending) or MaxAttempts are spent. The Response it returns, or
// the *Error, lists every attempt; usage reported by failed attempts is
// added to the result's, since the provider bills it.
func (r Retry) Do(ctx context.Context, kind string, attempt func(ctx context.Context) (*Response, error)) (*Response, error) {
	r = r.withDefaults()
	var attempts []Attempt
	var used Usage
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, r.Timeout)
		resp, err := attempt(actx)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err == nil {
			resp.Provider = kind
			resp.Usage = resp.Usage.add(used)
			resp.Attempts = append(attempts, Attempt{Status: http.StatusOK})
			return resp, nil
		}
		ae := asAttempt(err)
		if timedOut && ae.Status == 0 {
			ae.Message = "no answer within " + r.Timeout.String()
		}
		used = used.add(ae.Usage)
		a := Attempt{Status: ae.Status, Error: trim(ae.Message)}
		fail := func(code string) error {
			attempts = append(attempts, a)
			return &Error{code: code, Provider: kind, Status: lastStatus(attempts), Message: trim(ae.Message),
				Attempts: attempts, Usage: used, Text: ae.Text, Err: ae.Err}
		}
		if ctx.Err() != nil {
			a.Error = "cancelled: " + ctx.Err().Error()
			ae.Err = ctx.Err()
			ae.Message = a.Error
			return nil, fail(CodeCancelled)
		}
		if ae.Final {
			code := CodeProviderError
			if errors.Is(ae.Err, ErrStopped) || errors.Is(ae.Err, context.Canceled) {
				code = CodeCancelled
			}
			return nil, fail(code)
		}
		retryable := Retryable(ae.Status) || ae.Broken
		if !retryable || n >= r.MaxAttempts {
			if retryable && n > 1 {
				ae.Message += " (after " + strconv.Itoa(n) + " attempts)"
			}
			return nil, fail(CodeProviderError)
		}
		wait := r.BaseDelay << (n - 1)
		if wait > r.MaxDelay || wait <= 0 {
			wait = r.MaxDelay
		}
		if ae.RetryAfter > 0 {
			if ae.RetryAfter > r.MaxDelay {
				ae.Message += " (the provider asks to wait " + ae.RetryAfter.String() + ", longer than the " + r.MaxDelay.String() + " allowed)"
				return nil, fail(CodeProviderError)
			}
			wait = ae.RetryAfter
		}
		a.WaitMS = ms(wait)
		attempts = append(attempts, a)
		if err := r.Sleep(ctx, wait); err != nil {
			a := &attempts[len(attempts)-1]
			return nil, &Error{code: CodeCancelled, Provider: kind, Status: a.Status, Message: "cancelled while waiting to retry: " + err.Error(),
				Attempts: attempts, Usage: used, Err: err}
		}
	}
}

func lastStatus(as []Attempt) int {
	if len(as) == 0 {
		return 0
	}
	return as[len(as)-1].Status
}

// RetryAfter reads a provider's wish to be called again later:
// retry-after-ms (OpenAI), then retry-after in seconds or as an HTTP date.
// Zero when there is none or it does not parse.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 && n < 1e9 {
			return time.Duration(n * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n > 0 && n < 1e6 {
			return time.Duration(n * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
