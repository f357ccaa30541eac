// Package nudgellm is the nudge decider that asks a language model: one
// OpenAI-compatible chat completion per evaluation, answered in a fixed JSON
// shape {decision: "yes"|"no", reasoning: string, nudge: string|null}.
package nudgellm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/foresight-vision/foresight/ports"
)

// Engine is the name the decider gives its decisions.
const Engine = "llm"

// DefaultTimeout bounds one model call.
const DefaultTimeout = 30 * time.Second

// DefaultPrompt is the system prompt (FORESIGHT_NUDGE_PROMPT) when none is
// given. It keeps the original's purpose without its harshness.
const DefaultPrompt = `You are a health agent watching, through captions from a wearer's smart glasses, what they see and do.
Decide whether to intervene right now. Intervene only for something worth changing now: unhealthy food or drink, long sedentary behaviour, or a risky action (for example using a phone while crossing a street).
If you intervene, write one short message (at most two sentences) addressed to the wearer as "you" that names one concrete corrective action they can take now. Be kind and encouraging; never insult, shame or lecture the wearer.
Do not intervene for ordinary, healthy or unclear situations, or when a nudge was delivered very recently for the same thing.`

// ResponseFormat says how the reply's JSON shape is asked for.
type ResponseFormat string

const (
	// FormatJSONSchema sends response_format json_schema, strict: the
	// server constrains the reply to the schema (OpenAI, recent vLLM,
	// llama.cpp and Ollama).
	FormatJSONSchema ResponseFormat = "json_schema"
	// FormatJSONObject sends response_format json_object and describes the
	// schema in the system prompt, for servers that accept JSON mode only.
	FormatJSONObject ResponseFormat = "json_object"
	// FormatNone sends no response_format and describes the schema in the
	// system prompt; a reply wrapped in a ``` fence is accepted.
	FormatNone ResponseFormat = "none"
)

// ParseResponseFormat reads FORESIGHT_NUDGE_LLM_RESPONSE_FORMAT; empty means
// FormatJSONSchema.
func ParseResponseFormat(s string) (ResponseFormat, error) {
	switch f := ResponseFormat(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return FormatJSONSchema, nil
	case FormatJSONSchema, FormatJSONObject, FormatNone:
		return f, nil
	}
	return "", fmt.Errorf("nudge llm: response format %q: want json_schema, json_object or none", s)
}

// Config configures the decider.
type Config struct {
	// BaseURL is the server's API root, e.g. https://api.openai.com/v1.
	BaseURL string
	// APIKey is sent as a bearer token; empty sends no Authorization header.
	APIKey string
	Model  string
	// Prompt is the system prompt; empty means DefaultPrompt.
	Prompt string
	// Timeout bounds one call; zero means DefaultTimeout.
	Timeout        time.Duration
	ResponseFormat ResponseFormat
}

// Decider implements ports.NudgeDecider over a chat completion.
type Decider struct {
	cfg       Config
	client    *openai.Client
	transport *http.Transport
}

// maxCaptions bounds the captions put into one prompt (the newest are kept).
const maxCaptions = 200

// maxReplyText bounds the server's text quoted in an error.
const maxReplyText = 200

// maxReplyBytes bounds a reply body the SDK reads (a decision is a few
// hundred bytes), and maxErrorBytes an error body, which the SDK reads whole.
const (
	maxReplyBytes = 1 << 20
	maxErrorBytes = 64 << 10
)

// New checks cfg and builds a decider. Call Close when done.
func New(cfg Config) (*Decider, error) {
	if strings.TrimSpace(cfg.BaseURL) == "" {
		return nil, errors.New("nudge llm: no base URL")
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("nudge llm: no model")
	}
	if cfg.Prompt == "" {
		cfg.Prompt = DefaultPrompt
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	f, err := ParseResponseFormat(string(cfg.ResponseFormat))
	if err != nil {
		return nil, err
	}
	cfg.ResponseFormat = f

	transport := http.DefaultTransport.(*http.Transport).Clone()
	// The SDK sets no Authorization header for an empty key, reads no
	// environment variable (not even OPENAI_API_KEY) and makes no retry:
	// the loop has its own retries and its own interval. The call is
	// bounded by Decide's context.
	sdkCfg := openai.DefaultConfig(cfg.APIKey)
	sdkCfg.BaseURL = cfg.BaseURL
	sdkCfg.HTTPClient = boundedDoer{client: &http.Client{Transport: transport}}
	return &Decider{cfg: cfg, client: openai.NewClientWithConfig(sdkCfg), transport: transport}, nil
}

// boundedDoer caps what the SDK can read of a reply body.
type boundedDoer struct{ client *http.Client }

func (d boundedDoer) Do(req *http.Request) (*http.Response, error) {
	res, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		// Cut, not failed: a cut body still gives the status.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(res.Body, maxErrorBytes), res.Body}
		return res, nil
	}
	res.Body = &cappedBody{rc: res.Body, left: maxReplyBytes}
	return res, nil
}

// cappedBody fails a read past its limit instead of growing without bound.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("reply body too large")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// Close releases idle connections.
func (d *Decider) Close() { d.transport.CloseIdleConnections() }

// replySchema is the JSON schema of the model's reply, marshalled once for
// the SDK's json.Marshaler field.
var replySchema = mustMarshal(map[string]any{
	"type": "object",
	"properties": map[string]any{
		"decision":  map[string]any{"type": "string", "enum": []string{"yes", "no"}, "description": "yes to nudge the wearer now, no otherwise"},
		"reasoning": map[string]any{"type": "string", "description": "one or two sentences on why"},
		"nudge":     map[string]any{"type": []string{"string", "null"}, "description": "the message to the wearer when decision is yes, else null"},
	},
	"required":             []string{"decision", "reasoning", "nudge"},
	"additionalProperties": false,
})

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// schemaInPrompt tells the model the shape when the server cannot enforce it.
const schemaInPrompt = `

Answer with one JSON object and nothing else, exactly of this shape:
{"decision": "yes" or "no", "reasoning": "<one or two sentences on why>", "nudge": "<the message to the wearer>" or null}
"nudge" must be a non-empty string when "decision" is "yes", and null when it is "no". No other keys.`

// Decide implements ports.NudgeDecider.
func (d *Decider) Decide(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()

	system := d.cfg.Prompt
	request := openai.ChatCompletionRequest{Model: d.cfg.Model}
	switch d.cfg.ResponseFormat {
	case FormatJSONSchema:
		request.ResponseFormat = &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name:   "nudge_decision",
				Strict: true,
				Schema: replySchema,
			},
		}
	case FormatJSONObject:
		system += schemaInPrompt
		request.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
	case FormatNone:
		system += schemaInPrompt
	}
	request.Messages = []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: system},
		{Role: openai.ChatMessageRoleUser, Content: UserMessage(in)},
	}

	decision := ports.NudgeDecision{Engine: Engine, Model: d.cfg.Model}
	resp, err := d.client.CreateChatCompletion(ctx, request)
	if err != nil {
		return decision, d.describeCallError(err)
	}
	if resp.Model != "" {
		decision.Model = resp.Model
	}
	decision.PromptTokens = resp.Usage.PromptTokens
	decision.CompletionTokens = resp.Usage.CompletionTokens
	if len(resp.Choices) == 0 {
		return decision, errors.New("model reply has no choices")
	}
	msg := resp.Choices[0].Message
	if msg.Refusal != "" {
		return decision, fmt.Errorf("model refused: %s", clip(d.redact(msg.Refusal)))
	}
	content := msg.Content
	if d.cfg.ResponseFormat == FormatNone {
		content = stripFence(content)
	}
	r, err := parseReply([]byte(content), d.redact)
	if err != nil {
		return decision, err
	}
	decision.Deliver = r.Decision == "yes"
	decision.Reasoning = r.Reasoning
	if decision.Deliver {
		decision.Message = r.Nudge
	}
	return decision, nil
}

// Reply is the model's answer, checked against the schema.
type Reply struct {
	Decision  string
	Reasoning string
	Nudge     string
}

// parseReply checks a reply against the schema: one JSON object with exactly
// the keys decision ("yes" or "no"), reasoning (a string) and nudge (a string,
// or null), and a non-empty nudge when the decision is yes. redact is applied
// to the model's text before it is cut into an error: the reply may quote the
// key.
func parseReply(content []byte, redact func(string) string) (Reply, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(content))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Reply{}, fmt.Errorf("model reply is not a JSON object: %q", clip(redact(string(content))))
	}
	if dec.More() {
		return Reply{}, fmt.Errorf("model reply has text after its JSON object: %q", clip(redact(string(content))))
	}
	for k := range fields {
		if k != "decision" && k != "reasoning" && k != "nudge" {
			return Reply{}, fmt.Errorf("model reply has an unexpected field %q", clip(redact(k)))
		}
	}
	var r Reply
	if err := stringField(fields, "decision", &r.Decision, false); err != nil {
		return Reply{}, err
	}
	if r.Decision != "yes" && r.Decision != "no" {
		return Reply{}, fmt.Errorf("model reply: decision is %q, want \"yes\" or \"no\"", clip(redact(r.Decision)))
	}
	if err := stringField(fields, "reasoning", &r.Reasoning, false); err != nil {
		return Reply{}, err
	}
	if err := stringField(fields, "nudge", &r.Nudge, true); err != nil {
		return Reply{}, err
	}
	r.Nudge = strings.TrimSpace(r.Nudge)
	if r.Decision == "yes" && r.Nudge == "" {
		return Reply{}, errors.New("model reply: decision is yes but nudge is empty")
	}
	return r, nil
}

func stringField(fields map[string]json.RawMessage, key string, dst *string, nullable bool) error {
	raw, ok := fields[key]
	if !ok {
		return fmt.Errorf("model reply: no %q field", key)
	}
	if nullable && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return fmt.Errorf("model reply: %q is not a string", key)
	}
	return nil
}

// UserMessage renders the window for the model: the captions with their
// times, and when the last nudge was delivered.
func UserMessage(in ports.NudgeInput) string {
	caps := in.Captions
	if len(caps) > maxCaptions {
		caps = caps[len(caps)-maxCaptions:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Current time: %s\n", in.Now.UTC().Format(time.RFC3339))
	if in.LastDelivered.IsZero() {
		b.WriteString("Last nudge delivered: never\n")
	} else {
		fmt.Fprintf(&b, "Last nudge delivered: %s (%s ago)\n", in.LastDelivered.UTC().Format(time.RFC3339), in.Now.Sub(in.LastDelivered).Round(time.Second))
	}
	fmt.Fprintf(&b, "\nWhat the glasses saw, oldest first (%d captions):\n", len(caps))
	for _, c := range caps {
		fmt.Fprintf(&b, "[%s] %s\n", c.Time.UTC().Format(time.TimeOnly), strings.Join(strings.Fields(c.Text), " "))
	}
	if len(in.Biometrics) > 0 {
		writeBiometrics(&b, in.Biometrics)
	}
	b.WriteString("\nShould the wearer be nudged now?")
	return b.String()
}

// biometricLine lists, in this order, the features a window's line shows
// when it has them: heart rate, its variability, movement, signal quality.
var biometricLine = []struct{ field, label, format string }{
	{"hrMean", "hr", "%.0f"}, {"hrMin", "min", "%.0f"}, {"hrMax", "max", "%.0f"},
	{"rmssd", "rmssd", "%.0f ms"}, {"sdnn", "sdnn", "%.0f ms"},
	{"movementIntensity", "movement", "%.2f"}, {"qualityScore", "quality", "%.2f"},
}

// writeBiometrics adds the wrist sensor's windows, one compact line each
// (the newest maxCaptions), after the captions.
func writeBiometrics(b *strings.Builder, windows []ports.BiometricRef) {
	if len(windows) > maxCaptions {
		windows = windows[len(windows)-maxCaptions:]
	}
	fmt.Fprintf(b, "\nTheir body, from the wrist sensor, oldest first (%d windows; hr in beats per minute):\n", len(windows))
	for _, w := range windows {
		fmt.Fprintf(b, "[%s]", w.Time.UTC().Format(time.TimeOnly))
		shown := 0
		for _, f := range biometricLine {
			if v, ok := w.Features[f.field]; ok {
				fmt.Fprintf(b, " %s "+f.format, f.label, v)
				shown++
			}
		}
		if shown == 0 {
			b.WriteString(" no heart or movement signal")
		}
		if w.AlertLevel != "" {
			fmt.Fprintf(b, ", alert %s", w.AlertLevel)
		}
		b.WriteByte('\n')
	}
}

// describeCallError keeps what reaches the record short and free of the
// request's headers and the API key; the SDK's own texts quote whole bodies.
func (d *Decider) describeCallError(err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		if apiErr.Message != "" {
			return fmt.Errorf("model server answered %d: %s", apiErr.HTTPStatusCode, clip(d.redact(apiErr.Message)))
		}
		return fmt.Errorf("model server answered %d", apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return fmt.Errorf("model server answered %d", reqErr.HTTPStatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("model call timed out: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("model call: %w", err)
}

// redact removes the API key from upstream text, before it is cut.
func (d *Decider) redact(s string) string {
	if d.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, d.cfg.APIKey, "[redacted]")
}

func stripFence(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return s
	}
	t = strings.TrimPrefix(t, "```")
	if nl := strings.IndexByte(t, '\n'); nl >= 0 {
		t = t[nl+1:] // drop the language tag line
	}
	return strings.TrimSuffix(strings.TrimSpace(t), "```")
}

func clip(s string) string {
	if r := []rune(s); len(r) > maxReplyText {
		return string(r[:maxReplyText]) + "…"
	}
	return s
}
