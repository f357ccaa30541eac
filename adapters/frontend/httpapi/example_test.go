package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/domain"
)

// Mount the stream and Poke handlers on your own mux. Any
// ports.InferenceBackend can stand behind the stream (nil means none).
func ExampleNewStreamHandler() {
	logger := slog.New(slog.DiscardHandler)
	notifier, err := poke.New(poke.Config{}, logger)
	if err != nil {
		panic(err)
	}
	stream := domain.DefaultStreamConfig() // the server's tuning; a zero field means none, off or all
	stream.ChunkInterval = 2 * time.Second
	streams := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{
		Stream: stream,
		Logger: logger,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /vision/stream", streams)
	mux.Handle("POST /poke/send", httpapi.NewPokeHandler(httpapi.PokeConfig{Notifier: notifier, Logger: logger}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/vision/stream")
	if err != nil {
		panic(err)
	}
	_ = wsutil.WriteClientBinary(conn, []byte("a JPEG frame"))
	ack, _, _ := wsutil.ReadServerData(conn)
	fmt.Println(string(ack))
	_ = conn.Close()

	// On shutdown: 1001 to every open stream, inference sessions closed.
	_ = streams.Shutdown(context.Background())
	// Output: {"frame":1,"bytes":12}
}
