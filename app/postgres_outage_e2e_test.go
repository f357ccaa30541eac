package app_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports"
)

// outageQueue is the caption queue's bound in the outage test: small, so
// the outage overflows it within a second of streaming.
const outageQueue = 50

// The database stopped mid-stream, for real: every frame is still acked in
// order, captions keep coming on acks, the queue holds at most its bound
// and drops the rest (counted), and once Postgres is back the queued rows
// are written. In the end every caption seen is either stored or counted
// as dropped, never both, never twice.
func TestPostgresOutageMidStreamChangesNoAck(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := postgresURL(t, pg.NewDatabase(t))
	captionFake(t)
	inst := startWithStore(t, dsn, "FORESIGHT_CAPTION_QUEUE", strconv.Itoa(outageQueue))
	stopped := false
	defer func() {
		if !stopped {
			stopInstance(t, inst)
		}
	}()
	conn := dialDevice(t, inst, "glasses-pg")
	defer func() { _ = conn.Close() }()

	var frame int64
	seen := map[string]int{} // caption -> phase it was seen in
	// stream sends frames until n more captions came back on acks, checking
	// every ack answers its own frame, in order.
	stream := func(phase, n int) []string {
		t.Helper()
		var got []string
		for sent := 0; len(got) < n; sent++ {
			require.Less(t, sent, 20_000, "too few captions in phase %d: %d", phase, len(got))
			require.NoError(t, conn.SendFrame([]byte("jpeg-bytes")))
			frame++
			ack, err := conn.ReadAck()
			require.NoError(t, err, "phase %d, frame %d", phase, frame)
			require.Equal(t, frame, ack.Frame, "each frame gets its own ack, in order")
			require.Empty(t, ack.InferenceError)
			if ack.HasCaption {
				_, dup := seen[ack.Caption]
				require.False(t, dup, "caption %q delivered twice", ack.Caption)
				seen[ack.Caption] = phase
				got = append(got, ack.Caption)
			}
			if sent%4 == 3 {
				time.Sleep(time.Millisecond) // a camera's pace, loosely
			}
		}
		return got
	}
	metric := func(name string) float64 {
		_, body := get(t, inst.URL()+"/metrics")
		return metricValue(t, body, name)
	}
	settled := func() bool { // nothing queued, every caption handed in accounted for
		_, body := get(t, inst.URL()+"/metrics")
		return metricValue(t, body, "foresight_caption_queue_depth") == 0 &&
			metricValue(t, body, "foresight_captions_recorded_total") ==
				metricValue(t, body, "foresight_captions_stored_total")+metricValue(t, body, "foresight_captions_dropped_total")
	}

	// Phase 1: the database up; the first captions are written.
	before := stream(1, 5)
	require.Eventually(t, settled, 15*time.Second, 20*time.Millisecond)
	require.Zero(t, metric("foresight_captions_dropped_total"))

	// Phase 2: the database gone. Acks and captions go on; the queue fills
	// to its bound and no further.
	pg.Stop(t)
	var during []string
	for len(during) < outageQueue+30 {
		during = append(during, stream(2, 10)...)
		assert.LessOrEqual(t, metric("foresight_caption_queue_depth"), float64(outageQueue), "the queue's bound holds")
	}
	assert.Equal(t, float64(outageQueue), metric("foresight_caption_queue_depth"), "the queue is full, not more")
	assert.Positive(t, metric("foresight_captions_dropped_total"), "past the bound the oldest are dropped")

	// Phase 3: the database back. The queued rows are written without a
	// new caption to push them; then streaming goes on as before.
	pg.Restart(t)
	require.Eventually(t, settled, 20*time.Second, 20*time.Millisecond, "the queued rows are written once the database is back")
	after := stream(3, 5)
	require.NoError(t, conn.Close())
	require.Eventually(t, settled, 15*time.Second, 20*time.Millisecond)
	dropped := metric("foresight_captions_dropped_total")
	assert.Equal(t, float64(len(seen)), metric("foresight_captions_recorded_total"), "every caption seen went to the recorder")
	stopInstance(t, inst)
	stopped = true

	rows := pgCaptions(t, dsn, "glasses-pg")
	stored := map[string]bool{}
	for _, text := range rows {
		assert.Contains(t, seen, text, "a stored caption was seen by the client")
		assert.False(t, stored[text], "caption %q stored twice", text)
		stored[text] = true
	}
	for _, text := range append(before, after...) {
		assert.True(t, stored[text], "caption %q seen while the database was up is stored", text)
	}
	duringStored := 0
	for _, text := range during {
		if stored[text] {
			duringStored++
		}
	}
	assert.Equal(t, float64(len(seen)-len(rows)), dropped, "the drop counter is captions seen minus captions stored")
	assert.GreaterOrEqual(t, dropped, float64(len(during)-outageQueue), "at most the bound survives the outage")
	assert.Positive(t, duringStored, "queued captions were written once the database was back")
	t.Logf("seen %d (before %d, during outage %d, after %d); stored %d (%d from the outage); dropped %v",
		len(seen), len(before), len(during), len(after), len(rows), duringStored, dropped)
}

// pgCaptions reads the captions of device straight from Postgres.
func pgCaptions(t *testing.T, dsn, device string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := postgres.Open(ctx, dsn)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	var out []string
	q := ports.CaptionQuery{Device: device, Limit: ports.MaxCaptionLimit}
	for {
		page, err := store.QueryCaptions(ctx, q)
		require.NoError(t, err)
		for _, c := range page.Captions {
			out = append(out, c.Text)
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}
