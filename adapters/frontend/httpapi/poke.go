package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/foresight-vision/foresight/adapters/frontend/trust"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// DefaultMaxPokeBodyBytes bounds a /poke/send request body.
const DefaultMaxPokeBodyBytes = 64 << 10

// pokeBodyTimeout bounds reading a /poke/send request body.
const pokeBodyTimeout = 10 * time.Second

// PokeConfig configures POST /poke/send.
type PokeConfig struct {
	// Notifier delivers the message.
	Notifier ports.Notifier
	// ServerKey is the server's own Poke API key (FORESIGHT_POKE_API_KEY).
	ServerKey string
	// Trust decides whether the client's x-poke-api-key header may win over
	// ServerKey (adapters/frontend/trust; FORESIGHT_TRUST_CLIENT_CREDENTIALS). The
	// zero value uses the header only when the server has no key.
	Trust trust.Policy
	// MaxBodyBytes bounds the request body; zero means 64 KiB.
	MaxBodyBytes int64
	Observer     Observer
	Logger       *slog.Logger
}

// PokeHandler serves POST /poke/send.
type PokeHandler struct{ cfg PokeConfig }

// NewPokeHandler returns the /poke/send handler.
func NewPokeHandler(cfg PokeConfig) *PokeHandler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxPokeBodyBytes
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &PokeHandler{cfg: cfg}
}

// apiKey picks the key per the trust policy (docs/security.md).
func (h *PokeHandler) apiKey(r *http.Request) string {
	return h.cfg.Trust.Pick(h.cfg.ServerKey, strings.TrimSpace(r.Header.Get(wire.HeaderPokeAPIKey)))
}

func (h *PokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A client trickling its body must not hold a goroutine forever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(pokeBodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		h.cfg.Observer.PokeSent("bad_request")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeDetail(w, http.StatusRequestEntityTooLarge, "Request body too large")
			return
		}
		writeDetail(w, http.StatusBadRequest, "could not read request body")
		return
	}
	message, problem := parseMessage(body)
	if problem != nil {
		h.cfg.Observer.PokeSent("bad_request")
		writeValidation(w, problem)
		return
	}
	key := h.apiKey(r)
	if key == "" {
		h.cfg.Observer.PokeSent("no_key")
		writeDetail(w, http.StatusInternalServerError, "Poke API key not configured")
		return
	}
	data, err := h.cfg.Notifier.Notify(r.Context(), key, message)
	if err != nil {
		h.cfg.Observer.PokeSent("upstream_error")
		// The notifier's error text is short and safe to show a client;
		// it never carries the key or the upstream body.
		h.cfg.Logger.Warn("poke send failed", "err", err)
		writeDetail(w, http.StatusBadGateway, err.Error())
		return
	}
	h.cfg.Observer.PokeSent("ok")
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": data, "error": nil})
}

// validationError is one entry of FastAPI's 422 "detail" list.
type validationError struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

// writeValidation answers FastAPI's 422 shape, {"detail": [...]}.
func writeValidation(w http.ResponseWriter, problems ...*validationError) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": problems})
}

// parseMessage validates {"message": "<text>"} the way FastAPI and pydantic
// do, returning the same error entry for each kind of bad body.
func parseMessage(body []byte) (string, *validationError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", &validationError{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || dec.Decode(new(any)) != io.EOF {
		return "", &validationError{Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error",
			Input: map[string]any{}, Ctx: map[string]any{"error": "Expecting value"}}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return "", &validationError{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: doc}
	}
	raw, ok := obj["message"]
	if !ok {
		return "", &validationError{Type: "missing", Loc: []any{"body", "message"}, Msg: "Field required", Input: obj}
	}
	message, ok := raw.(string)
	if !ok {
		return "", &validationError{Type: "string_type", Loc: []any{"body", "message"}, Msg: "Input should be a valid string", Input: raw}
	}
	// encoding/json turns bytes that are not UTF-8, and escaped lone
	// surrogates, into U+FFFD; the original refused such a message.
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || !validUnicodeString(fields["message"]) {
		return "", &validationError{Type: "string_unicode", Loc: []any{"body", "message"},
			Msg: "Input should be a valid string, unable to parse raw data as a unicode string", Input: message}
	}
	return message, nil
}

// validUnicodeString reports whether a raw JSON string literal holds only
// Unicode text: valid UTF-8, and every \u escape of a surrogate paired.
func validUnicodeString(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue // a one-letter escape; \\ is skipped whole
		}
		r, ok := hex4(raw, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00: // a high surrogate needs a low one next
			low, ok := hex4(raw, i+3)
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' || !ok || low < 0xDC00 || low > 0xDFFF {
				return false
			}
			i += 6
		case utf16.IsSurrogate(r): // a low surrogate alone
			return false
		}
	}
	return true
}

// hex4 reads the four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(raw) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i:i+4]), 16, 32)
	return rune(n), err == nil
}
