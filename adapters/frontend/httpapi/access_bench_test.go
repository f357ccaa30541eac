package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
)

// BenchmarkReadAndAckWithToken is BenchmarkReadAndAck behind the access
// gate, the stream opened with a device token on a real SQLite store: the
// token is checked once, at the upgrade, so the loop (frame in, ack out)
// should cost what it costs without the gate.
func BenchmarkReadAndAckWithToken(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "f.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	secret := access.NewSecret()
	if err := store.CreateToken(context.Background(), ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret),
		Role: ports.RoleDevice, Devices: []string{"kit"}, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{})
	gate := access.NewGate(access.GateConfig{RequireTokens: true,
		Verifier: access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return store }})})
	srv := httptest.NewServer(gate.Wrap(h))
	defer srv.Close()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + secret}})}
	conn, br, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 20_000))))
	if err != nil {
		b.Fatal(err)
	}
	var hdrBuf [ws.MaxHeaderSize]byte
	ack := make([]byte, 256)
	roundTrip := func() {
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		hdr, err := ws.ReadHeaderBuffer(r, hdrBuf[:ws.MaxHeaderSize-2])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, ack[:hdr.Length]); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
	b.StopTimer()
	_ = conn.Close()
	_ = h.Shutdown(context.Background())
}
