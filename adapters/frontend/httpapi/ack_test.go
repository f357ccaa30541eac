package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// TestAppendAckWire pins the bytes of each kind of ack, field order included:
// the glasses app and the seed's replay client read exactly these.
func TestAppendAckWire(t *testing.T) {
	tests := []struct {
		name string
		ack  domain.Ack
		want string
	}{
		{"plain", domain.Ack{Frame: 7, Bytes: 20000}, `{"frame":7,"bytes":20000}`},
		{"result in key order", domain.Ack{Frame: 3, Bytes: 5, Result: ports.Result{
			TokensGenerated: 12, Caption: "a dog", LatencyMS: 120, ChunkStartS: 0.0, ChunkEndS: 1.5, Set: ports.ResultAll,
		}}, `{"frame":3,"bytes":5,"caption":"a dog","chunk_end_s":1.5,"chunk_start_s":0,"latency_ms":120,"tokens_generated":12}`},
		{"extra model fields pass", domain.Ack{Frame: 1, Bytes: 1, Result: extras("zeta", []int{1}, "alpha", true)},
			`{"frame":1,"bytes":1,"alpha":true,"zeta":[1]}`},
		{"null fields left out", domain.Ack{Frame: 1, Bytes: 1, Result: extras("caption", nil, "x", 1)}, `{"frame":1,"bytes":1,"x":1}`},
		{"model cannot set frame or bytes", domain.Ack{Frame: 2, Bytes: 3, Result: extras("frame", 99, "bytes", 99)}, `{"frame":2,"bytes":3}`},
		{"unencodable field left out", domain.Ack{Frame: 1, Bytes: 1, Result: extras("nan", math.NaN(), "ok", 1)}, `{"frame":1,"bytes":1,"ok":1}`},
		{"inference error", domain.Ack{Frame: 4, Bytes: 2, InferenceError: "inference timed out after 5s"},
			`{"frame":4,"bytes":2,"inference_error":"inference timed out after 5s"}`},
		{"the server's error wins over a model field of that name", domain.Ack{Frame: 4, Bytes: 2,
			Result:         ports.Result{Extras: map[string]any{"inference_error": "model's"}, Caption: "c", Set: ports.ResultCaption},
			InferenceError: "server's"},
			`{"frame":4,"bytes":2,"caption":"c","inference_error":"server's"}`},
		{"camera alone", domain.Ack{Frame: 262, Bytes: 3120, Camera: "dark"}, `{"frame":262,"bytes":3120,"camera":"dark"}`},
		{"camera among result fields, in key order", domain.Ack{Frame: 301, Bytes: 9, Camera: "ok",
			Result: ports.Result{Caption: "a desk", LatencyMS: 80, Set: ports.ResultCaption | ports.ResultLatency}},
			`{"frame":301,"bytes":9,"camera":"ok","caption":"a desk","latency_ms":80}`},
		{"camera with an inference error", domain.Ack{Frame: 5, Bytes: 1, Camera: "blurred", InferenceError: "boom"},
			`{"frame":5,"bytes":1,"camera":"blurred","inference_error":"boom"}`},
		{"the server's camera wins over a model field of that name", domain.Ack{Frame: 6, Bytes: 1, Camera: "dark",
			Result: extras("camera", "model's")}, `{"frame":6,"bytes":1,"camera":"dark"}`},
		{"without a camera state a model field of that name passes as before", domain.Ack{Frame: 6, Bytes: 1,
			Result: extras("camera", "model's")}, `{"frame":6,"bytes":1,"camera":"model's"}`},
		{"a typed field wins over an extra of that name", domain.Ack{Frame: 8, Bytes: 1,
			Result: ports.Result{Caption: "typed", Set: ports.ResultCaption, Extras: map[string]any{"caption": "extra", "z": 1}}},
			`{"frame":8,"bytes":1,"caption":"typed","z":1}`},
		{"an empty caption that is set is sent", domain.Ack{Frame: 9, Bytes: 1,
			Result: ports.Result{ChunkStartS: 2, ChunkEndS: 3, Set: ports.ResultAll}},
			`{"frame":9,"bytes":1,"caption":"","chunk_end_s":3,"chunk_start_s":2,"latency_ms":0,"tokens_generated":0}`},
		{"a typed field that cannot be encoded is left out", domain.Ack{Frame: 9, Bytes: 1,
			Result: ports.Result{LatencyMS: math.Inf(1), Caption: "c", Set: ports.ResultCaption | ports.ResultLatency}},
			`{"frame":9,"bytes":1,"caption":"c"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, string(httpapi.AppendAck(nil, tt.ack)))
		})
	}
}

// TestAppendAckAllocatesNothing backs docs/benchmarks.md: an ack without a
// result is encoded without allocating.
func TestAppendAckAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf = httpapi.AppendAck(buf[:0], domain.Ack{Frame: 123456, Bytes: 20_000})
	})
	assert.Zero(t, allocs)
}

// TestReadAndAckAllocatesOncePerFrame backs docs/benchmarks.md: one frame
// through a real loopback WebSocket costs the server one allocation, the
// frame's own buffer (no inference here, so no chunk cuts).
func TestReadAndAckAllocatesOncePerFrame(t *testing.T) {
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, br, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	require.NoError(t, err)
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 20_000))))
	require.NoError(t, err)
	var hdrBuf [ws.MaxHeaderSize]byte
	ack := make([]byte, 256)
	roundTrip := func() {
		_, err := conn.Write(frame)
		require.NoError(t, err)
		hdr, err := ws.ReadHeaderBuffer(r, hdrBuf[:ws.MaxHeaderSize-2])
		require.NoError(t, err)
		_, err = io.ReadFull(r, ack[:hdr.Length])
		require.NoError(t, err)
	}
	roundTrip() // the handshake and first allocations are not counted
	allocs := testing.AllocsPerRun(200, roundTrip)
	assert.LessOrEqual(t, allocs, 1.0)
	_ = conn.Close()
	_ = h.Shutdown(context.Background())
}

// FuzzAppendAck checks that the hand-written ack encoder always yields valid
// JSON that decodes to what encoding/json makes of the same fields, with
// frame and bytes first and the other keys in order.
func FuzzAppendAck(f *testing.F) {
	f.Add(int64(1), 20000, "a dog", "", "latency_ms", 120.5, false, "")
	f.Add(int64(-1), -5, "", "inference timed out after 5s", "", 0.0, true, "")
	f.Add(int64(math.MaxInt64), math.MinInt, "\xff\xfe<>&\u2028", "\x00\"\\", "frame", math.Inf(1), false, "")
	f.Add(int64(0), 0, "caption", "boom", "inference_error", math.Copysign(0, -1), true, "")
	f.Add(int64(9), 1, "a desk", "", "camera", 1.0, false, "dark")
	f.Add(int64(9), 1, "", "boom", "", 0.0, false, "\xff\"")
	f.Fuzz(func(t *testing.T, frame int64, size int, caption, errText, key string, number float64, withNull bool, camera string) {
		result := map[string]any{}
		if caption != "" {
			result["caption"] = caption
		}
		if key != "" {
			result[key] = number
		}
		if withNull {
			result["nothing"] = nil
		}
		ack := domain.Ack{Frame: frame, Bytes: size, Result: typedResult(result), InferenceError: errText, Camera: camera}
		got := httpapi.AppendAck([]byte("prefix"), ack)
		require.True(t, bytes.HasPrefix(got, []byte("prefix")), "appends to dst")
		got = got[len("prefix"):]
		require.True(t, json.Valid(got), "valid JSON: %q", got)

		want := map[string]any{}
		for k, v := range result {
			if v == nil || k == "frame" || k == "bytes" {
				continue
			}
			if _, err := json.Marshal(v); err != nil {
				continue
			}
			want[k] = v
		}
		if errText != "" {
			want["inference_error"] = errText
		}
		if camera != "" {
			want["camera"] = camera
		}
		want["frame"] = frame
		want["bytes"] = size
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		assert.Equal(t, decode(t, wantJSON), decode(t, got))

		keys := objectKeys(t, got)
		require.GreaterOrEqual(t, len(keys), 2)
		assert.Equal(t, []string{"frame", "bytes"}, keys[:2])
		for i := 3; i < len(keys); i++ {
			assert.Less(t, keys[i-1], keys[i], "keys after frame and bytes are sorted and unique")
		}
	})
}

// extras is a result of only backend-specific fields, given as name, value
// pairs.
func extras(pairs ...any) ports.Result {
	m := make(map[string]any, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1]
	}
	return ports.Result{Extras: m}
}

// typedResult is the result a backend builds from reply fields: those of
// the typed fields' names and types become typed fields, the rest extras.
func typedResult(fields map[string]any) ports.Result {
	var res ports.Result
	for name, value := range fields {
		s, isString := value.(string)
		f, isFloat := value.(float64)
		switch {
		case name == "caption" && isString:
			res.Caption, res.Set = s, res.Set|ports.ResultCaption
		case name == "chunk_start_s" && isFloat:
			res.ChunkStartS, res.Set = f, res.Set|ports.ResultChunkStart
		case name == "chunk_end_s" && isFloat:
			res.ChunkEndS, res.Set = f, res.Set|ports.ResultChunkEnd
		case name == "latency_ms" && isFloat:
			res.LatencyMS, res.Set = f, res.Set|ports.ResultLatency
		case name == "tokens_generated" && isFloat && f == math.Trunc(f) && math.Abs(f) <= 1<<53 && !(f == 0 && math.Signbit(f)):
			res.TokensGenerated, res.Set = int64(f), res.Set|ports.ResultTokens
		default:
			if res.Extras == nil {
				res.Extras = map[string]any{}
			}
			res.Extras[name] = value
		}
	}
	return res
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out map[string]any
	require.NoError(t, dec.Decode(&out))
	return out
}

func objectKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	_, err := dec.Token() // {
	require.NoError(t, err)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip any
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}
