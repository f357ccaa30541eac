package wsframe_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe/wsframetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noDeadlines stands in for a net.Conn's deadlines over in-memory bytes.
type noDeadlines struct{}

func (noDeadlines) SetReadDeadline(time.Time) error  { return nil }
func (noDeadlines) SetWriteDeadline(time.Time) error { return nil }

// capBudget is a budget with a limit that records its peak use.
type capBudget struct {
	mu          sync.Mutex
	limit, used int64
	peak        int64
}

func (b *capBudget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *capBudget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// clientFrame is a masked client frame as bytes.
func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var buf bytes.Buffer
	f := ws.NewFrame(op, fin, bytes.Clone(payload))
	f = ws.MaskFrameInPlace(f)
	if err := ws.WriteFrame(&buf, f); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// serve reads every message of input as a server and returns them, the
// close code the connection ended with and what the server wrote.
func serve(input []byte, cfg wsframe.ServerConfig) (msgs [][]byte, code wire.CloseCode, out []byte) {
	var w bytes.Buffer
	s := wsframe.NewServer(noDeadlines{}, bufio.NewReader(bytes.NewReader(input)), bufio.NewWriter(&w), cfg)
	for {
		msg, err := s.ReadMessage()
		var dropped *wsframe.DroppedError
		if errors.As(err, &dropped) {
			continue
		}
		if err != nil {
			return msgs, s.End(err), w.Bytes()
		}
		msgs = append(msgs, msg)
	}
}

// readServerFrames parses what the server wrote.
func readServerFrames(t testing.TB, out []byte) []ws.Frame {
	t.Helper()
	var frames []ws.Frame
	r := bytes.NewReader(out)
	for r.Len() > 0 {
		f, err := wsframetest.ReadFrame(r)
		require.NoError(t, err)
		frames = append(frames, f)
	}
	return frames
}

func TestMessagesPingsAndClose(t *testing.T) {
	var in []byte
	in = append(in, clientFrame(ws.OpBinary, true, []byte("one"))...)
	in = append(in, clientFrame(ws.OpBinary, false, []byte("tw"))...)
	in = append(in, clientFrame(ws.OpPing, true, []byte("p"))...)
	in = append(in, clientFrame(ws.OpContinuation, true, []byte("o"))...)
	in = append(in, clientFrame(ws.OpClose, true, wsframe.CloseBody(4000, "bye"))...)
	msgs, code, out := serve(in, wsframe.ServerConfig{MaxMessageBytes: 16})
	assert.Equal(t, [][]byte{[]byte("one"), []byte("two")}, msgs)
	assert.Equal(t, wire.CloseCode(4000), code)
	frames := readServerFrames(t, out)
	require.Len(t, frames, 2)
	assert.Equal(t, ws.OpPong, frames[0].Header.OpCode)
	assert.Equal(t, "p", string(frames[0].Payload))
	assert.Equal(t, ws.OpClose, frames[1].Header.OpCode)
	assert.Equal(t, wsframe.CloseBody(4000, ""), frames[1].Payload)
}

func TestInvalidCloseFrames(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
		code    wire.CloseCode
		reply   []byte
	}{
		{"empty", nil, wire.CloseNoStatus, nil},
		{"one byte", []byte{3}, wire.CloseProtocolError, wsframe.CloseBody(1002, wsframe.ReasonInvalidCloseCode)},
		{"reserved code", wsframe.CloseBody(1005, ""), wire.CloseProtocolError, wsframe.CloseBody(1002, wsframe.ReasonInvalidCloseCode)},
		{"reason not UTF-8", append(wsframe.CloseBody(1000, ""), 0xff, 0xfe), wire.CloseInvalidPayload, wsframe.CloseBody(1007, wsframe.ReasonInvalidCloseReason)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, code, out := serve(clientFrame(ws.OpClose, true, tc.payload), wsframe.ServerConfig{})
			assert.Equal(t, tc.code, code)
			frames := readServerFrames(t, out)
			require.Len(t, frames, 1)
			assert.Equal(t, tc.reply, frames[0].Payload)
		})
	}
}

func TestRefusedFramesGetCloseCodes(t *testing.T) {
	unmasked := func() []byte {
		var b bytes.Buffer
		require.NoError(t, ws.WriteFrame(&b, ws.NewBinaryFrame([]byte("x"))))
		return b.Bytes()
	}()
	cases := []struct {
		name  string
		input []byte
		code  wire.CloseCode
	}{
		{"text", clientFrame(ws.OpText, true, []byte("hi")), wire.CloseUnsupportedData},
		{"unmasked", unmasked, wire.CloseProtocolError},
		{"too big", clientFrame(ws.OpBinary, true, make([]byte, 17)), wire.CloseMessageTooBig},
		{"orphan continuation", clientFrame(ws.OpContinuation, true, nil), wire.CloseProtocolError},
		{"big ping", clientFrame(ws.OpPing, true, make([]byte, 126)), wire.CloseProtocolError},
		{"eof mid-frame", clientFrame(ws.OpBinary, true, []byte("abc"))[:8], wire.CloseAbnormal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, code, _ := serve(tc.input, wsframe.ServerConfig{MaxMessageBytes: 16})
			assert.Equal(t, tc.code, code)
		})
	}
}

func TestSpentBudgetGets1013AndIsGivenBack(t *testing.T) {
	b := &capBudget{limit: 1000}
	_, code, _ := serve(clientFrame(ws.OpBinary, true, make([]byte, 5000)), wsframe.ServerConfig{Budget: b})
	assert.Equal(t, wire.CloseTryAgainLater, code)
	assert.Zero(t, b.used)
}

func TestSpentBudgetDropsWhenAskedAndReadsOn(t *testing.T) {
	var input []byte
	input = append(input, clientFrame(ws.OpBinary, true, make([]byte, 5000))...)
	input = append(input, clientFrame(ws.OpBinary, false, make([]byte, 600))...)
	input = append(input, clientFrame(ws.OpContinuation, false, make([]byte, 600))...)
	input = append(input, clientFrame(ws.OpContinuation, true, make([]byte, 10))...)
	input = append(input, clientFrame(ws.OpBinary, true, []byte("after"))...)
	b := &capBudget{limit: 1000}
	var w bytes.Buffer
	s := wsframe.NewServer(noDeadlines{}, bufio.NewReader(bytes.NewReader(input)), bufio.NewWriter(&w),
		wsframe.ServerConfig{Budget: b, DropWhenShort: true})
	for _, want := range []int64{5000, 1210} {
		_, err := s.ReadMessage()
		var dropped *wsframe.DroppedError
		require.ErrorAs(t, err, &dropped)
		assert.Equal(t, want, dropped.Bytes)
		assert.Zero(t, b.used)
	}
	msg, err := s.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "after", string(msg))
	assert.Zero(t, b.used)
	assert.LessOrEqual(t, b.peak, int64(1000))
}

func TestLargePayloadIsReadWholeAndCountedAtOneAndAHalfTimes(t *testing.T) {
	payload := make([]byte, 1<<20+123)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	b := &capBudget{limit: 1 << 30}
	msgs, _, _ := serve(clientFrame(ws.OpBinary, true, payload), wsframe.ServerConfig{Budget: b})
	require.Len(t, msgs, 1)
	assert.True(t, bytes.Equal(payload, msgs[0]))
	assert.Zero(t, b.used)
	// Slabs up to half the payload, then the exact buffer: every byte held counted.
	assert.Equal(t, wsframe.ReadCost(int64(len(payload))), b.peak)
	assert.LessOrEqual(t, b.peak, int64(len(payload))*3/2+64<<10)
}

func TestAppendFrameRoundTrips(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{7}, n)
		for _, masked := range []bool{false, true} {
			raw := wsframe.AppendFrame(nil, ws.OpBinary, payload, masked)
			f, err := wsframetest.ReadFrame(bytes.NewReader(raw))
			require.NoError(t, err)
			assert.Equal(t, masked, f.Header.Masked)
			if masked {
				f = ws.UnmaskFrameInPlace(f)
			}
			assert.True(t, bytes.Equal(payload, f.Payload), "n=%d masked=%v", n, masked)
			assert.True(t, bytes.Equal(payload, bytes.Repeat([]byte{7}, n)), "payload must stay unmodified")
		}
	}
}

func TestCloseBodyCutsLongReasonsAtRuneBoundary(t *testing.T) {
	body := wsframe.CloseBody(1000, string(bytes.Repeat([]byte("é"), 100)))
	assert.LessOrEqual(t, len(body), 125)
	assert.True(t, utf8.Valid(body[2:]))
}

// FuzzServerRead feeds arbitrary bytes as a client connection: the reader
// never panics, never holds more than the budget, never returns a message
// over the limit, gives the budget back and always ends with a close code
// the server may send (or 1006 when the bytes just stop).
func FuzzServerRead(f *testing.F) {
	f.Add(clientFrame(ws.OpBinary, true, []byte("frame")))
	f.Add(clientFrame(ws.OpText, true, []byte("text")))
	f.Add(append(clientFrame(ws.OpBinary, false, []byte("a")), clientFrame(ws.OpContinuation, true, []byte("b"))...))
	f.Add(clientFrame(ws.OpPing, true, []byte("ping")))
	f.Add(clientFrame(ws.OpClose, true, wsframe.CloseBody(1000, "")))
	f.Add(clientFrame(ws.OpClose, true, []byte{0x03, 0xe8, 0xff}))
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x82, 0xfe, 0x00, 0x01, 1, 2, 3, 4})
	const maxMsg, budgetLimit = 1 << 12, 1 << 16
	f.Fuzz(func(t *testing.T, input []byte) {
		b := &capBudget{limit: budgetLimit}
		drop := len(input)%2 == 1 // both ways of meeting a spent budget
		msgs, code, out := serve(input, wsframe.ServerConfig{MaxMessageBytes: maxMsg, Budget: b, DropWhenShort: drop})
		for _, m := range msgs {
			if len(m) > maxMsg {
				t.Fatalf("message of %d bytes over the %d limit", len(m), maxMsg)
			}
		}
		if b.peak > budgetLimit || b.used != 0 {
			t.Fatalf("budget peak %d (limit %d), %d still held", b.peak, budgetLimit, b.used)
		}
		if code != wire.CloseAbnormal && code != wire.CloseNoStatus && !code.PeerMaySend() {
			t.Fatalf("ended with close code %d", code)
		}
		// What the server wrote is well-formed frames, the last one a close
		// if any close was sent.
		r := bytes.NewReader(out)
		for r.Len() > 0 {
			fr, err := wsframetest.ReadFrame(r)
			if err != nil {
				t.Fatalf("server wrote a malformed frame: %v", err)
			}
			if fr.Header.OpCode == ws.OpClose && r.Len() != 0 {
				t.Fatal("server wrote after its close frame")
			}
		}
	})
}

// FuzzParseClose checks close-frame parsing: an accepted frame has a code a
// peer may send and a UTF-8 reason; a refused one answers 1002 or 1007 with
// a body that fits a control frame.
func FuzzParseClose(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add(wsframe.CloseBody(1000, "bye"))
	f.Add(wsframe.CloseBody(1005, ""))
	f.Add(wsframe.CloseBody(4999, "ok"))
	f.Add([]byte{0x03, 0xe8, 0xc3, 0x28})
	f.Fuzz(func(t *testing.T, payload []byte) {
		code, reason, bad := wsframe.ParseClose(payload)
		switch {
		case bad != nil:
			if bad.Code != wire.CloseProtocolError && bad.Code != wire.CloseInvalidPayload {
				t.Fatalf("refused with %d", bad.Code)
			}
			if body := wsframe.CloseBody(bad.Code, bad.Reason); len(body) > 125 {
				t.Fatalf("reply body of %d bytes", len(body))
			}
		case len(payload) == 0:
			if code != wire.CloseNoStatus {
				t.Fatalf("empty payload gave %d", code)
			}
		default:
			if !code.PeerMaySend() || !utf8.ValidString(reason) {
				t.Fatalf("accepted code %d reason %q", code, reason)
			}
			if !bytes.Equal(wsframe.CloseBody(code, reason), payload) {
				t.Fatal("close body does not round-trip")
			}
		}
	})
}

func TestRecycledBufferIsReadIntoAndHoldsItsBudget(t *testing.T) {
	input := append(clientFrame(ws.OpBinary, true, []byte("first")), clientFrame(ws.OpBinary, true, []byte("two"))...)
	input = append(input, clientFrame(ws.OpBinary, true, []byte("a longer one"))...)
	b := &capBudget{limit: 1 << 20}
	var w bytes.Buffer
	s := wsframe.NewServer(noDeadlines{}, bufio.NewReader(bytes.NewReader(input)), bufio.NewWriter(&w), wsframe.ServerConfig{Budget: b})
	first, err := s.ReadMessage()
	require.NoError(t, err)
	assert.Zero(t, b.used)
	s.Recycle(first)
	assert.Equal(t, int64(cap(first)), b.used, "a recycled buffer is counted while it waits")
	second, err := s.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "two", string(second))
	assert.Same(t, &first[:1][0], &second[:1][0], "read into the recycled buffer")
	assert.Zero(t, b.used)
	s.Recycle(second)
	third, err := s.ReadMessage() // too large for it: a fresh buffer
	require.NoError(t, err)
	assert.Equal(t, "a longer one", string(third))
	assert.Equal(t, int64(cap(second)), b.used)
	s.End(io.EOF)
	assert.Zero(t, b.used, "End gives the recycled buffer's share back")
}
