package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

// With every search slot taken, a plain listing still runs, and a search
// waits for a slot rather than for a connection.
func TestSearchesLeaveConnectionsForListings(t *testing.T) {
	srv := pgtest.Start(t)
	s, err := Open(t.Context(), srv.NewDatabase(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{captionstest.Make(1, "kit", "s1", "a donut")}))
	require.Less(t, int32(cap(s.searchSlots)), s.pool.Config().MaxConns, "searches never hold every connection")

	for range cap(s.searchSlots) {
		s.searchSlots <- struct{}{}
	}
	page, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{})
	require.NoError(t, err)
	assert.Len(t, page.Captions, 1)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.QueryCaptions(ctx, ports.CaptionQuery{Text: "donut"})
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorContains(t, err, "wait for a search slot")

	<-s.searchSlots
	page, err = s.QueryCaptions(t.Context(), ports.CaptionQuery{Text: "donut"})
	require.NoError(t, err)
	assert.Len(t, page.Captions, 1)
}
