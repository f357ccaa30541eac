package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrRateLimited is wrapped by the error of a 429 reply and by that of every
// chunk dropped while its stream waits out the Retry-After.
var ErrRateLimited = errors.New("rate limited")

// ErrStoppedEarly is a 2xx reply without a finish reason: the server cut the
// generation short (Ollama does when the model repeats itself, and still
// answers 200 with a partial reply and zero usage). The partial text is not
// a caption.
var ErrStoppedEarly = errors.New("model stopped early without a finish reason (partial reply dropped)")

// ErrEmptyCaption is a 2xx reply whose text is empty or only whitespace.
var ErrEmptyCaption = errors.New("model returned an empty caption")

// StatusError is a reply with a non-2xx status. Its text is short and safe
// to show to the client: the status and a reason cut from the body, with the
// API key redacted.
type StatusError struct {
	StatusCode int
	// Reason is the upstream's own message, sanitized and cut short; it may
	// be empty.
	Reason string
	// RetryAfter is the wait a 429 asks for (Retry-After, capped), or the
	// default wait when it gave none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := "model server answered " + strconv.Itoa(e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		msg += " " + text
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.StatusCode == http.StatusTooManyRequests {
		msg += " (retry in " + e.RetryAfter.String() + ")"
	}
	return msg
}

// Unwrap makes a 429 match ErrRateLimited.
func (e *StatusError) Unwrap() error {
	if e.StatusCode == http.StatusTooManyRequests {
		return ErrRateLimited
	}
	return nil
}

// UnreachableError is a request that got no reply: the server could not be
// reached or the connection broke.
type UnreachableError struct {
	Host   string
	Reason string
	err    error
}

func (e *UnreachableError) Error() string {
	return "cannot reach " + e.Host + ": " + e.Reason
}

func (e *UnreachableError) Unwrap() error { return e.err }

// maxReasonRunes bounds the upstream text kept in an error.
const maxReasonRunes = 160

// maxErrorBody bounds what is read of a non-2xx body.
const maxErrorBody = 8 << 10

// redactor removes a secret from upstream text before it is cut short, so
// that no prefix of the secret can survive the cut.
type redactor struct{ secret string }

func (r redactor) clean(s string) string {
	if r.secret != "" {
		s = strings.ReplaceAll(s, r.secret, "[redacted]")
	}
	s = strings.Map(func(c rune) rune {
		if c == utf8.RuneError || (unicode.IsControl(c) && !unicode.IsSpace(c)) {
			return -1
		}
		return c
	}, s)
	s = collapseWhitespace(s)
	if utf8.RuneCountInString(s) > maxReasonRunes {
		s = string([]rune(s)[:maxReasonRunes]) + "…"
	}
	return s
}

// errorReason picks the upstream's message out of an error body: OpenAI's
// {"error":{"message":…}}, Ollama's and llama.cpp's {"error":"…"}, vLLM's
// older {"message":…}, FastAPI's {"detail":"…"}, Gemini's list of errors,
// or a short plain-text body. Anything else (HTML error pages) gives "".
func errorReason(body []byte, contentType string) string {
	var doc any
	if err := json.Unmarshal(body, &doc); err == nil {
		return messageIn(doc, 0)
	}
	if strings.HasPrefix(contentType, "text/plain") {
		return string(body)
	}
	return ""
}

func messageIn(v any, depth int) string {
	if depth > 3 {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case []any:
		if len(v) > 0 {
			return messageIn(v[0], depth+1)
		}
	case map[string]any:
		for _, key := range []string{"error", "message", "detail"} {
			if m, ok := v[key]; ok {
				if s := messageIn(m, depth+1); s != "" {
					return s
				}
			}
		}
	}
	return ""
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date,
// against now. ok is false when the header is absent or unusable.
func retryAfter(h http.Header, now time.Time) (wait time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs != secs || secs < 0 { // NaN or negative
			return 0, false
		}
		if secs > float64(time.Duration(1<<62)/time.Second) {
			return time.Duration(1 << 62), true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// unreachableReason is the innermost cause of a transport failure, which
// names what went wrong ("connection refused", "no such host") without the
// request's URL.
func unreachableReason(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return fmt.Sprint(err)
}
