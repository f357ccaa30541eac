package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/answer/openaichat/openaichattest"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/ports"
)

// These tests run the whole server over a SQLite file seeded beforehand
// and the chat/embeddings double; they set no process state.

// askCaption is a caption of device stored ago before now.
func askCaption(id, device, text string, ago time.Duration) ports.Caption {
	start := time.Now().UTC().Add(-ago).Truncate(time.Microsecond)
	return ports.Caption{ID: id, Device: device, StreamID: "s-" + device, Start: start, End: start.Add(2 * time.Second),
		Text: text, Backend: "test", Model: "test"}
}

// seedAsk writes captions into a fresh SQLite file and returns its URL.
func seedAsk(t *testing.T, captions ...ports.Caption) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ask.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.SaveCaptions(t.Context(), captions))
	require.NoError(t, s.Close())
	return "sqlite:" + path
}

func startAsk(t *testing.T, databaseURL string, env ...string) *app.Instance {
	t.Helper()
	base := []string{"FORESIGHT_INFERENCE_BACKEND", "none", "FORESIGHT_DATABASE_URL", databaseURL}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append(base, env...)...), nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { stopInstance(t, inst) })
	return inst
}

type askReply struct {
	Answer    string `json:"answer"`
	Citations []struct {
		Ref     int    `json:"ref"`
		ID      string `json:"id"`
		Start   string `json:"start"`
		Caption string `json:"caption"`
	} `json:"citations"`
	Retrieved int     `json:"retrieved"`
	Model     *string `json:"model"`
	Retrieval string  `json:"retrieval"`
	Detail    any     `json:"detail"`
}

func ask(t *testing.T, inst *app.Instance, body any) (int, askReply) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	res, err := http.Post(inst.URL()+"/ask", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	var out askReply
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return res.StatusCode, out
}

// citeLineWith answers by citing the numbered caption line holding word,
// plus a number the list does not have (which must be dropped).
func citeLineWith(word string) func(openaichattest.ChatRequest) openaichattest.ChatResponse {
	return func(r openaichattest.ChatRequest) openaichattest.ChatResponse {
		for _, line := range strings.Split(r.User(), "\n") {
			var n int
			if strings.Contains(line, word) {
				if _, err := fmt.Sscanf(line, "[%d]", &n); err == nil {
					return openaichattest.ChatResponse{Pieces: []string{"You saw ", "it ", fmt.Sprintf("here [%d]", n), ", and [999]."}}
				}
			}
		}
		return openaichattest.ChatResponse{Pieces: []string{"The captions do not say."}}
	}
}

func TestAskCitesTheCaptionHoldingTheAnswerAndNoOtherDevice(t *testing.T) {
	fake := openaichattest.NewServer()
	defer fake.Close()
	fake.Respond(citeLineWith("bowl"))
	db := seedAsk(t,
		askCaption("c1", "kit", "the wearer drops the keys in the blue bowl by the door", 3*time.Hour),
		askCaption("c2", "kit", "the wearer reads a book on the sofa", 2*time.Hour),
		askCaption("c3", "other", "keys on a red bowl in the kitchen", time.Hour),
		askCaption("c4", "kit", "keys in a bowl, two days ago", 48*time.Hour),
	)
	inst := startAsk(t, db, "FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer")

	status, got := ask(t, inst, map[string]any{"device": "kit", "question": "Where did I leave my keys?"})
	require.Equal(t, http.StatusOK, status, "%+v", got)
	require.Len(t, got.Citations, 1, "the invented [999] is dropped")
	assert.Equal(t, "c1", got.Citations[0].ID)
	assert.Equal(t, "the wearer drops the keys in the blue bowl by the door", got.Citations[0].Caption)
	assert.Equal(t, "text", got.Retrieval)
	require.NotNil(t, got.Model)
	assert.Equal(t, "answerer", *got.Model)
	assert.Contains(t, got.Answer, "[", "the answer names the captions it used")

	chats := fake.Chats()
	require.Len(t, chats, 1)
	user := chats[0].User()
	assert.Contains(t, user, "the wearer drops the keys in the blue bowl by the door", "the model's request held the caption")
	assert.NotContains(t, user, "red bowl", "another device's captions are never retrieved")
	assert.NotContains(t, user, "two days ago", "the default range is the last 24 hours")
	assert.Empty(t, chats[0].Authorization, "no key configured, none sent")

	// Another device's range holds nothing of kit's.
	status, got = ask(t, inst, map[string]any{"device": "other", "question": "Where are the blue bowl keys?"})
	require.Equal(t, http.StatusOK, status)
	for _, c := range got.Citations {
		assert.Equal(t, "c3", c.ID)
	}
}

func TestAskWithNothingInRangeDoesNotCallTheModel(t *testing.T) {
	fake := openaichattest.NewServer()
	defer fake.Close()
	inst := startAsk(t, seedAsk(t, askCaption("c1", "kit", "old", 72*time.Hour)),
		"FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer")
	status, got := ask(t, inst, map[string]any{"device": "kit", "question": "What did I do?"})
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, got.Answer, "no captions")
	assert.Empty(t, got.Citations)
	assert.Nil(t, got.Model)
	assert.Empty(t, fake.Chats())
}

func TestAskAnswersItsErrorsClearly(t *testing.T) {
	fake := openaichattest.NewServer()
	defer fake.Close()
	db := seedAsk(t, askCaption("c1", "kit", "a cup of coffee", time.Hour))

	t.Run("NoModel", func(t *testing.T) {
		inst := startAsk(t, db)
		status, got := ask(t, inst, map[string]any{"device": "kit", "question": "coffee?"})
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Contains(t, got.Detail, "FORESIGHT_ASK_MODEL")
	})
	inst := startAsk(t, db, "FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer",
		"FORESIGHT_ASK_API_KEY", "sk-secret-ask", "FORESIGHT_ASK_TIMEOUT", "300ms")
	t.Run("BadInput", func(t *testing.T) {
		for _, body := range []any{
			map[string]any{"device": "kit", "question": ""},
			map[string]any{"device": "kit", "question": strings.Repeat("x", 2001)},
			map[string]any{"device": "bad device!", "question": "coffee?"},
			map[string]any{"question": "coffee?"},
			map[string]any{"device": "kit", "question": "coffee?", "since": "yesterday"},
			map[string]any{"device": "kit", "question": "coffee?", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
			[]string{"not", "an", "object"},
		} {
			status, got := ask(t, inst, body)
			assert.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)
			detail, ok := got.Detail.([]any)
			require.True(t, ok, "FastAPI's list of problems: %v", got.Detail)
			require.NotEmpty(t, detail)
			assert.Contains(t, detail[0], "loc")
		}
	})
	t.Run("ModelFails", func(t *testing.T) {
		fake.Respond(func(openaichattest.ChatRequest) openaichattest.ChatResponse {
			return openaichattest.ChatResponse{Status: 500, Body: `{"error":{"message":"boom sk-secret-ask"}}`}
		})
		status, got := ask(t, inst, map[string]any{"device": "kit", "question": "coffee?"})
		assert.Equal(t, http.StatusBadGateway, status)
		assert.Equal(t, "the ask model failed", got.Detail)
		assert.Equal(t, "Bearer sk-secret-ask", fake.Chats()[len(fake.Chats())-1].Authorization)
	})
	t.Run("ModelTimesOut", func(t *testing.T) {
		fake.Respond(func(openaichattest.ChatRequest) openaichattest.ChatResponse {
			return openaichattest.ChatResponse{Stall: true}
		})
		status, got := ask(t, inst, map[string]any{"device": "kit", "question": "coffee?"})
		assert.Equal(t, http.StatusGatewayTimeout, status)
		assert.Equal(t, "the ask model did not answer in time", got.Detail)
	})
}

func TestAskStreamsTheAnswerInSeveralEvents(t *testing.T) {
	fake := openaichattest.NewServer()
	defer fake.Close()
	fake.Respond(citeLineWith("coffee"))
	inst := startAsk(t, seedAsk(t, askCaption("c1", "kit", "a cup of coffee on the desk", time.Hour)),
		"FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer")

	req, err := http.NewRequest(http.MethodPost, inst.URL()+"/ask", strings.NewReader(`{"device":"kit","question":"Where was my coffee?"}`))
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))

	var names []string
	var text strings.Builder
	var done askReply
	scanner := bufio.NewScanner(res.Body)
	name := ""
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
			names = append(names, name)
		case strings.HasPrefix(line, "data: ") && name == "delta":
			var d struct{ Text string }
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d))
			text.WriteString(d.Text)
		case strings.HasPrefix(line, "data: ") && name == "done":
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &done))
		}
	}
	require.NoError(t, scanner.Err())
	require.GreaterOrEqual(t, len(names), 3, "several deltas, then done: %v", names)
	assert.Equal(t, "done", names[len(names)-1])
	for _, n := range names[:len(names)-1] {
		assert.Equal(t, "delta", n)
	}
	assert.Equal(t, done.Answer, text.String(), "the deltas add up to the answer")
	require.Len(t, done.Citations, 1)
	assert.Equal(t, "c1", done.Citations[0].ID)
}

// meaningCorpus is a caption that answers "what was my lunch?" in no word
// of it, behind more newer captions than a prompt holds.
func meaningCorpus() []ports.Caption {
	caps := []ports.Caption{askCaption("lunch", "kit", "the wearer bites into a sandwich", 5*time.Hour)}
	for i := range 60 {
		caps = append(caps, askCaption(fmt.Sprintf("wall-%02d", i), "kit", fmt.Sprintf("a plain white wall, view %d", i), time.Duration(60-i)*time.Minute))
	}
	return caps
}

func TestAskFindsByMeaningWithEmbeddingsOnly(t *testing.T) {
	fake := openaichattest.NewServer()
	defer fake.Close()
	fake.Respond(citeLineWith("sandwich"))
	question := map[string]any{"device": "kit", "question": "What was my lunch?"}

	t.Run("Off", func(t *testing.T) {
		inst := startAsk(t, seedAsk(t, meaningCorpus()...), "FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer")
		status, got := ask(t, inst, question)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "text", got.Retrieval)
		assert.Empty(t, got.Citations, "no word of the question is in the caption")
	})
	t.Run("On", func(t *testing.T) {
		// Stored before the server started: the back-fill embeds them,
		// retrying after its first request fails.
		fake.FailEmbeddings(1)
		inst := startAsk(t, seedAsk(t, meaningCorpus()...), "FORESIGHT_ASK_BASE_URL", fake.URL, "FORESIGHT_ASK_MODEL", "answerer",
			"FORESIGHT_EMBEDDINGS_MODEL", "embedder", "FORESIGHT_EMBEDDINGS_BATCH", "16")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		require.NoError(t, fake.WaitEmbedded(ctx, "the wearer bites into a sandwich", "a plain white wall, view 59"))
		// Embedded is not yet stored: ask until the vector is in (bounded).
		var got askReply
		for {
			var status int
			status, got = ask(t, inst, question)
			require.Equal(t, http.StatusOK, status)
			if len(got.Citations) > 0 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		assert.Equal(t, "hybrid", got.Retrieval)
		require.Len(t, got.Citations, 1)
		assert.Equal(t, "lunch", got.Citations[0].ID)
		for _, in := range fake.EmbedInputs() {
			assert.LessOrEqual(t, len(in), 16, "batches of FORESIGHT_EMBEDDINGS_BATCH")
		}
	})
}
