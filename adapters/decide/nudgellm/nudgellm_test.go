package nudgellm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm"
	"github.com/foresight-vision/foresight/adapters/decide/nudgellm/nudgellmtest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func window() ports.NudgeInput {
	return ports.NudgeInput{
		Device: "dev1",
		Now:    t0.Add(time.Minute),
		Captions: []ports.CaptionRef{
			{ID: "c1", Time: t0.Add(10 * time.Second), Text: "The wearer holds a glazed donut."},
			{ID: "c2", Time: t0.Add(40 * time.Second), Text: "The wearer takes a  bite\nof the donut."},
		},
		LastDelivered: t0.Add(-15 * time.Minute),
	}
}

func newDecider(t *testing.T, srv *nudgellmtest.Server, cfg nudgellm.Config) *nudgellm.Decider {
	t.Helper()
	cfg.BaseURL = srv.BaseURL()
	if cfg.Model == "" {
		cfg.Model = "gpt-test"
	}
	d, err := nudgellm.New(cfg)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

func fakeServer(t *testing.T) *nudgellmtest.Server {
	t.Helper()
	srv := nudgellmtest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

func TestYesSendsSchemaAndReturnsTheNudge(t *testing.T) {
	srv := fakeServer(t)
	srv.AnswerYes("Swap the donut for an apple.")
	d := newDecider(t, srv, nudgellm.Config{APIKey: "sk-test"})

	dec, err := d.Decide(context.Background(), window())
	require.NoError(t, err)
	assert.True(t, dec.Deliver)
	assert.Equal(t, "Swap the donut for an apple.", dec.Message)
	assert.Equal(t, "the wearer could use a nudge", dec.Reasoning)
	assert.Equal(t, "llm", dec.Engine)
	assert.Equal(t, "fake-model", dec.Model, "the model the server says answered")
	assert.Equal(t, 120, dec.PromptTokens)
	assert.Equal(t, 30, dec.CompletionTokens)

	reqs := srv.Requests()
	require.Len(t, reqs, 1, "no retries")
	r := reqs[0]
	assert.Equal(t, "/v1/chat/completions", r.Path)
	assert.Equal(t, "Bearer sk-test", r.Authorization)
	assert.Equal(t, "gpt-test", r.Body["model"])
	rf, _ := r.Body["response_format"].(map[string]any)
	require.NotNil(t, rf)
	assert.Equal(t, "json_schema", rf["type"])
	js, _ := rf["json_schema"].(map[string]any)
	assert.Equal(t, true, js["strict"])
	assert.Equal(t, "nudge_decision", js["name"])
	schema, _ := js["schema"].(map[string]any)
	assert.Equal(t, false, schema["additionalProperties"])
	assert.ElementsMatch(t, []any{"decision", "reasoning", "nudge"}, schema["required"])

	msgs := r.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, "system", msgs[0][0])
	assert.Equal(t, nudgellm.DefaultPrompt, msgs[0][1], "json_schema mode needs no schema in the prompt")
	assert.Equal(t, "user", msgs[1][0])
	assert.Contains(t, msgs[1][1], "[12:00:10] The wearer holds a glazed donut.")
	assert.Contains(t, msgs[1][1], "[12:00:40] The wearer takes a bite of the donut.", "whitespace folded")
	assert.Contains(t, msgs[1][1], "Last nudge delivered: 2026-03-01T11:45:00Z (16m0s ago)")
}

func TestNoDeliversNothing(t *testing.T) {
	srv := fakeServer(t)
	srv.AnswerNo()
	d := newDecider(t, srv, nudgellm.Config{})
	in := window()
	in.LastDelivered = time.Time{}

	dec, err := d.Decide(context.Background(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver)
	assert.Empty(t, dec.Message)
	assert.Equal(t, "nothing to do", dec.Reasoning)
	assert.Contains(t, srv.Requests()[0].Messages()[1][1], "Last nudge delivered: never")
}

func TestNoKeyNoAuthorizationHeaderEvenWithTheSDKsEnvironment(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-from-environment")
	srv := fakeServer(t)
	d := newDecider(t, srv, nudgellm.Config{})
	_, err := d.Decide(context.Background(), window())
	require.NoError(t, err)
	assert.Empty(t, srv.Requests()[0].Authorization)
}

func TestFallbackFormatsDescribeTheSchemaInThePrompt(t *testing.T) {
	for _, f := range []nudgellm.ResponseFormat{nudgellm.FormatJSONObject, nudgellm.FormatNone} {
		t.Run(string(f), func(t *testing.T) {
			srv := fakeServer(t)
			srv.AnswerContent("```json\n{\"decision\":\"yes\",\"reasoning\":\"r\",\"nudge\":\"Stand up.\"}\n```")
			d := newDecider(t, srv, nudgellm.Config{ResponseFormat: f, Prompt: "Custom prompt."})
			dec, err := d.Decide(context.Background(), window())
			r := srv.Requests()[0]
			sys := r.Messages()[0][1]
			assert.True(t, strings.HasPrefix(sys, "Custom prompt."))
			assert.Contains(t, sys, `"decision": "yes" or "no"`)
			if f == nudgellm.FormatJSONObject {
				rf, _ := r.Body["response_format"].(map[string]any)
				assert.Equal(t, "json_object", rf["type"])
				require.ErrorContains(t, err, "not a JSON object", "JSON mode replies must be bare JSON")
				return
			}
			assert.NotContains(t, r.Body, "response_format")
			require.NoError(t, err, "without a format, a fenced reply is accepted")
			assert.Equal(t, "Stand up.", dec.Message)
		})
	}
	_, err := nudgellm.New(nudgellm.Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m", ResponseFormat: "grammar"})
	require.ErrorContains(t, err, `response format "grammar"`)
}

func TestRepliesNotValidAgainstTheSchemaAreErrors(t *testing.T) {
	cases := map[string]struct{ content, want string }{
		"not JSON":          {`Sure! I think you should stand up.`, "not a JSON object"},
		"an array":          {`["yes"]`, "not a JSON object"},
		"null":              {`null`, "not a JSON object"},
		"trailing text":     {`{"decision":"no","reasoning":"r","nudge":null} and more`, "text after"},
		"bad decision":      {`{"decision":"maybe","reasoning":"r","nudge":null}`, `decision is "maybe"`},
		"decision not str":  {`{"decision":true,"reasoning":"r","nudge":null}`, `"decision" is not a string`},
		"yes without nudge": {`{"decision":"yes","reasoning":"r","nudge":null}`, "nudge is empty"},
		"yes blank nudge":   {`{"decision":"yes","reasoning":"r","nudge":"  "}`, "nudge is empty"},
		"extra field":       {`{"decision":"no","reasoning":"r","nudge":null,"mood":"calm"}`, `unexpected field "mood"`},
		"missing reasoning": {`{"decision":"no","nudge":null}`, `no "reasoning" field`},
		"missing nudge":     {`{"decision":"no","reasoning":"r"}`, `no "nudge" field`},
		"reasoning null":    {`{"decision":"no","reasoning":null,"nudge":null}`, `"reasoning" is not a string`},
		"nudge a number":    {`{"decision":"yes","reasoning":"r","nudge":3}`, `"nudge" is not a string`},
		"fenced in schema":  {"```json\n{\"decision\":\"no\",\"reasoning\":\"r\",\"nudge\":null}\n```", "not a JSON object"},
		"empty":             {``, "not a JSON object"},
	}
	srv := fakeServer(t)
	d := newDecider(t, srv, nudgellm.Config{})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv.AnswerContent(tc.content)
			dec, err := d.Decide(context.Background(), window())
			require.ErrorContains(t, err, tc.want)
			assert.False(t, dec.Deliver)
			assert.Empty(t, dec.Message)
			assert.Equal(t, 150, dec.PromptTokens+dec.CompletionTokens, "the tokens spent are still reported")
		})
	}
}

func TestServerErrorsAreShortAndCarryNoKey(t *testing.T) {
	srv := fakeServer(t)
	srv.AnswerStatus(http.StatusBadRequest, "response_format json_schema is not supported")
	d := newDecider(t, srv, nudgellm.Config{APIKey: "sk-secret-123"})
	_, err := d.Decide(context.Background(), window())
	require.EqualError(t, err, "model server answered 400: response_format json_schema is not supported")

	srv.AnswerStatus(http.StatusInternalServerError, strings.Repeat("x", 5000))
	_, err = d.Decide(context.Background(), window())
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 300)
	assert.NotContains(t, err.Error(), "sk-secret-123")
	assert.Len(t, srv.Requests(), 2, "a 500 is not retried by the SDK")
}

func TestTimeoutAndCancellation(t *testing.T) {
	srv := fakeServer(t)
	srv.Stall()
	d := newDecider(t, srv, nudgellm.Config{Timeout: 50 * time.Millisecond})
	_, err := d.Decide(context.Background(), window())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "timed out")

	d2 := newDecider(t, srv, nudgellm.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = d2.Decide(ctx, window())
	require.ErrorIs(t, err, context.Canceled)
}

func TestNewNeedsBaseURLAndModel(t *testing.T) {
	_, err := nudgellm.New(nudgellm.Config{Model: "m"})
	require.ErrorContains(t, err, "base URL")
	_, err = nudgellm.New(nudgellm.Config{BaseURL: "http://127.0.0.1:1/v1"})
	require.ErrorContains(t, err, "model")
}

func TestUserMessageKeepsTheNewestCaptions(t *testing.T) {
	in := window()
	in.Captions = nil
	for i := range 250 {
		in.Captions = append(in.Captions, ports.CaptionRef{ID: "c", Time: t0, Text: "caption " + strings.Repeat("i", i%3) + string(rune('A'+i%26))})
	}
	in.Captions[249].Text = "the newest"
	in.Captions[0].Text = "the oldest"
	msg := nudgellm.UserMessage(in)
	assert.Contains(t, msg, "(200 captions)")
	assert.Contains(t, msg, "the newest")
	assert.NotContains(t, msg, "the oldest")
}

// A reply quoting the key is redacted before it is cut into an error, so not
// even the part of the key before the cut shows (errors keep 200 runes).
func TestReplyQuotingTheKeyIsRedactedBeforeTheCut(t *testing.T) {
	const key = "sk-secret-0123456789abcdef"
	srv := fakeServer(t)
	d := newDecider(t, srv, nudgellm.Config{APIKey: key})
	for _, offset := range []int{0, 150, 180, 190, 195} {
		pad := strings.Repeat("x", offset)
		replies := map[string]func(){
			"not JSON":      func() { srv.AnswerContent(pad + key + " and more") },
			"trailing text": func() { srv.AnswerContent(`{"decision":"no","reasoning":"r","nudge":null}` + pad + key) },
			"bad decision":  func() { srv.AnswerContent(`{"decision":"` + pad + key + `","reasoning":"r","nudge":null}`) },
			"refusal":       func() { srv.AnswerRefusal(pad + key + " is what I will not use") },
		}
		for name, answer := range replies {
			answer()
			_, err := d.Decide(context.Background(), window())
			require.Error(t, err, name)
			assert.NotContains(t, err.Error(), key[:4], "%s, key at %d: %s", name, offset, err)
		}
	}
}

func TestErrorEchoingTheKeyIsRedactedAndHugeBodiesAreBounded(t *testing.T) {
	const key = "sk-secret-0123456789abcdef"
	srv := fakeServer(t)
	d := newDecider(t, srv, nudgellm.Config{APIKey: key})

	srv.AnswerStatus(http.StatusUnauthorized, "Incorrect API key provided: "+key+".")
	_, err := d.Decide(context.Background(), window())
	require.EqualError(t, err, "model server answered 401: Incorrect API key provided: [redacted].")

	// An error body past the read bound is cut: the status still shows.
	srv.AnswerStatus(http.StatusBadGateway, strings.Repeat("y", 200<<10))
	_, err = d.Decide(context.Background(), window())
	require.EqualError(t, err, "model server answered 502")

	srv.AnswerContent(strings.Repeat("z", 2<<20))
	_, err = d.Decide(context.Background(), window())
	require.ErrorContains(t, err, "reply body too large")
	assert.Less(t, len(err.Error()), 300)
}
