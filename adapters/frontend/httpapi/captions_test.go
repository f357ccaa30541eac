package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

// captionsServer serves GET /captions over a real SQLite store holding captions.
func captionsServer(t *testing.T, captions ...ports.Caption) *httptest.Server {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	require.NoError(t, store.SaveCaptions(t.Context(), captions))
	return serveCaptions(t, store)
}

func serveCaptions(t *testing.T, reader ports.CaptionReader) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{
		Captions: func() ports.CaptionReader { return reader },
		Logger:   slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(srv.Close)
	return srv
}

func getCaptions(t *testing.T, srv *httptest.Server, query url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/captions?" + query.Encode())
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestCaptionsListsNewestFirstWithEveryField(t *testing.T) {
	srv := captionsServer(t,
		captionstest.Make(1, "kit", "s1", "The wearer pours coffee"),
		captionstest.Make(2, "kit", "s1", "A dog runs across the park"),
		captionstest.Make(3, "other", "s2", "Coffee cups on a table"))

	status, body := getCaptions(t, srv, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Nil(t, body["next_cursor"])
	list := body["captions"].([]any)
	require.Len(t, list, 3)
	assert.Equal(t, map[string]any{
		"id": "cap-0000003", "device": "other", "stream_id": "s2",
		"start": "2026-03-14T09:00:03Z", "end": "2026-03-14T09:00:05Z",
		"chunk_start_s": 3.0, "chunk_end_s": 5.0, "caption": "Coffee cups on a table",
		"latency_ms": 812.25, "tokens_generated": 3.0, "backend": "backend-a", "model": "model-a",
	}, list[0])

	_, body = getCaptions(t, srv, url.Values{"q": {"coffee"}, "device": {"kit"}})
	list = body["captions"].([]any)
	require.Len(t, list, 1)
	assert.Equal(t, "The wearer pours coffee", list[0].(map[string]any)["caption"])

	_, body = getCaptions(t, srv, url.Values{"since": {"2026-03-14T09:00:02Z"}, "until": {"2026-03-14T10:00:03+01:00"}})
	list = body["captions"].([]any)
	require.Len(t, list, 1, "until is exclusive, and offsets count")
	assert.Equal(t, "cap-0000002", list[0].(map[string]any)["id"])

	_, body = getCaptions(t, srv, url.Values{"stream": {"nope"}})
	assert.Equal(t, []any{}, body["captions"], "an empty list, not null")
}

func TestCaptionsCursorPages(t *testing.T) {
	var all []ports.Caption
	for i := range 12 {
		all = append(all, captionstest.Make(i, "kit", "s1", "row"))
	}
	srv := captionsServer(t, all...)
	var ids []string
	query := url.Values{"limit": {"5"}}
	for range 10 {
		status, body := getCaptions(t, srv, query)
		require.Equal(t, http.StatusOK, status)
		for _, c := range body["captions"].([]any) {
			ids = append(ids, c.(map[string]any)["id"].(string))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			break
		}
		query.Set("cursor", next)
	}
	require.Len(t, ids, 12)
	assert.Equal(t, "cap-0000011", ids[0])
	assert.Equal(t, "cap-0000000", ids[11])
}

func TestCaptionsBadParameters(t *testing.T) {
	srv := captionsServer(t)
	cases := []struct {
		query url.Values
		field string
		typ   string
	}{
		{url.Values{"limit": {"abc"}}, "limit", "int_parsing"},
		{url.Values{"limit": {"0"}}, "limit", "greater_than_equal"},
		{url.Values{"limit": {"501"}}, "limit", "less_than_equal"},
		{url.Values{"since": {"yesterday"}}, "since", "datetime_parsing"},
		{url.Values{"until": {"2026-03-14"}}, "until", "datetime_parsing"},
		{url.Values{"device": {"a b"}}, "device", "string_pattern_mismatch"},
		{url.Values{"device": {""}}, "device", "string_pattern_mismatch"},
		{url.Values{"device": {strings.Repeat("d", 65)}}, "device", "string_pattern_mismatch"},
		{url.Values{"q": {strings.Repeat("w", 257)}}, "q", "string_too_long"},
		{url.Values{"stream": {strings.Repeat("s", 129)}}, "stream", "string_too_long"},
		{url.Values{"cursor": {"!!!"}}, "cursor", "value_error"},
		{url.Values{"cursor": {"AAAA"}}, "cursor", "value_error"},
	}
	for _, tc := range cases {
		status, body := getCaptions(t, srv, tc.query)
		require.Equal(t, http.StatusUnprocessableEntity, status, tc.query.Encode())
		detail := body["detail"].([]any)
		require.Len(t, detail, 1, tc.query.Encode())
		entry := detail[0].(map[string]any)
		assert.Equal(t, tc.typ, entry["type"], tc.query.Encode())
		assert.Equal(t, []any{"query", tc.field}, entry["loc"], tc.query.Encode())
		assert.NotEmpty(t, entry["msg"])
	}
	status, body := getCaptions(t, srv, url.Values{"limit": {"x"}, "since": {"y"}})
	require.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Len(t, body["detail"], 2, "every bad parameter is reported")
}

// An over-long value is echoed cut on a rune boundary, never into U+FFFD.
func TestCaptionsTooLongInputIsCutOnARune(t *testing.T) {
	srv := captionsServer(t)
	// "€" is 3 bytes; after pad bytes of "w" it ends on, or straddles, the 256-byte limit.
	for pad, want := range map[int]string{
		253: strings.Repeat("w", 253) + "€",
		254: strings.Repeat("w", 254),
		255: strings.Repeat("w", 255),
	} {
		q := strings.Repeat("w", pad) + strings.Repeat("€", 4)
		status, body := getCaptions(t, srv, url.Values{"q": {q}})
		require.Equal(t, http.StatusUnprocessableEntity, status)
		input := body["detail"].([]any)[0].(map[string]any)["input"].(string)
		assert.Equal(t, want+"…", input, "pad %d", pad)
	}
}

type brokenReader struct{}

func (brokenReader) QueryCaptions(context.Context, ports.CaptionQuery) (ports.CaptionPage, error) {
	return ports.CaptionPage{}, errors.New("dial tcp 10.0.0.5:5432: password=hunter2 refused")
}

func TestCaptionsStoreDownAnswers503WithoutDetails(t *testing.T) {
	srv := serveCaptions(t, brokenReader{})
	status, body := getCaptions(t, srv, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, map[string]any{"detail": "caption store unavailable"}, body)
}

func TestCaptionsTimesKeepSubSeconds(t *testing.T) {
	c := captionstest.Make(1, "kit", "s1", "precise")
	c.Start = c.Start.Add(250 * time.Millisecond)
	srv := captionsServer(t, c)
	_, body := getCaptions(t, srv, nil)
	assert.Equal(t, "2026-03-14T09:00:01.25Z", body["captions"].([]any)[0].(map[string]any)["start"])
}

// Bytes no store takes as text, and times outside what every store keeps,
// are the caller's mistake: 422 naming the parameter, never a 503.
func TestCaptionsBadBytesAnswer422NamingTheParameter(t *testing.T) {
	srv := captionsServer(t, captionstest.Make(1, "kit", "s1", "a donut"))
	cases := []struct {
		query url.Values
		field string
		typ   string
	}{
		{url.Values{"stream": {"s1\x00"}}, "stream", "value_error"},
		{url.Values{"stream": {"s1\xff"}}, "stream", "string_unicode"},
		{url.Values{"q": {"\x00"}}, "q", "value_error"},
		{url.Values{"q": {"donut \xc3\x28"}}, "q", "string_unicode"},
		{url.Values{"device": {"kit\x00"}}, "device", "string_pattern_mismatch"},
		{url.Values{"since": {"0000-06-01T00:00:00Z"}}, "since", "value_error"},
		{url.Values{"until": {"9999-12-31T23:59:59-05:00"}}, "until", "value_error"},
	}
	for _, tc := range cases {
		status, body := getCaptions(t, srv, tc.query)
		require.Equal(t, http.StatusUnprocessableEntity, status, tc.query.Encode())
		detail := body["detail"].([]any)
		require.Len(t, detail, 1, tc.query.Encode())
		entry := detail[0].(map[string]any)
		assert.Equal(t, tc.typ, entry["type"], tc.query.Encode())
		assert.Equal(t, []any{"query", tc.field}, entry["loc"], tc.query.Encode())
		assert.True(t, utf8.ValidString(entry["input"].(string)), "the echo is valid text")
	}
}

// A cursor is accepted only as this server sealed it: a store cursor made
// up by hand, a tampered tag, another secret's cursor or another list's
// cursor is 422; a cursor from another instance with the same secret works.
func TestCaptionsRefuseCursorsThisServerDidNotGiveOut(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	var all []ports.Caption
	for i := range 5 {
		all = append(all, captionstest.Make(i, "kit", "s1", "row"))
	}
	require.NoError(t, store.SaveCaptions(t.Context(), all))
	logger := slog.New(slog.DiscardHandler)
	serve := func(cursors *httpapi.CursorSigner) *httptest.Server {
		srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{
			Captions: func() ports.CaptionReader { return store }, Cursors: cursors, Logger: logger}))
		t.Cleanup(srv.Close)
		return srv
	}
	one := serve(httpapi.NewCursorSigner("shared secret"))
	two := serve(httpapi.NewCursorSigner("shared secret"))
	other := serve(httpapi.NewCursorSigner("another secret"))
	random := serve(nil) // the process's random key

	status, body := getCaptions(t, one, url.Values{"limit": {"2"}})
	require.Equal(t, http.StatusOK, status)
	cursor := body["next_cursor"].(string)
	status, body = getCaptions(t, two, url.Values{"limit": {"2"}, "cursor": {cursor}})
	require.Equal(t, http.StatusOK, status, "an instance with the same secret goes on")
	assert.Equal(t, "cap-0000002", body["captions"].([]any)[0].(map[string]any)["id"])

	raw, _, _ := strings.Cut(cursor, ".")
	forged := ports.CaptionCursor{Start: captionstest.Make(4, "", "", "").Start, ID: "cap-0000004"}.String()
	require.NotEqual(t, raw, forged)
	tampered := []byte(cursor)
	tampered[len(tampered)-1] ^= 1
	for name, bad := range map[string]struct {
		srv    *httptest.Server
		cursor string
	}{
		"a store cursor made up by hand": {one, forged},
		"a store cursor without its tag": {one, raw},
		"a tampered tag":                 {one, string(tampered)},
		"a forged id with a copied tag":  {one, forged + cursor[len(raw):]},
		"another secret's cursor":        {other, cursor},
		"a cursor after a restart":       {random, cursor},
	} {
		status, body := getCaptions(t, bad.srv, url.Values{"cursor": {bad.cursor}})
		require.Equal(t, http.StatusUnprocessableEntity, status, name)
		assert.Equal(t, []any{"query", "cursor"}, body["detail"].([]any)[0].(map[string]any)["loc"], name)
	}
}
