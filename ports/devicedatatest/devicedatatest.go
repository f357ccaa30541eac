// Package devicedatatest is the contract a database keeps for a wearer's
// own data (ports.DeviceSecrets and ports.DeviceMemoryEraser), as a test
// suite an adapter runs against its real database:
//
//	devicedatatest.Run(t, devicedatatest.Harness{NewLocation: ..., Open: ...})
package devicedatatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
	"github.com/foresight-vision/foresight/ports/nudgestest"
)

// Store is what the suite needs of a database.
type Store interface {
	ports.CaptionStore
	ports.InterventionStore
	ports.DeviceSecrets
	ports.DeviceMemoryEraser
}

// Harness tells the suite how to reach the store under test.
type Harness struct {
	// NewLocation returns a fresh, empty database that lives as long as t.
	NewLocation func(t *testing.T) string
	// Open opens a store on a location, applying migrations. The suite
	// closes what it opens.
	Open func(ctx context.Context, location string) (Store, error)
}

// base is captionstest.Make's and nudgestest.Record's instant.
var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func at(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }

// Run runs the contract as subtests of t.
func Run(t *testing.T, h Harness) {
	fresh := func(t *testing.T) Store {
		t.Helper()
		s, err := h.Open(t.Context(), h.NewLocation(t))
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}

	t.Run("PokeKeysSetReplaceDeleteList", func(t *testing.T) {
		s := fresh(t)
		_, ok, err := s.PokeKey(t.Context(), "kit")
		require.NoError(t, err)
		assert.False(t, ok)

		first := ports.SealedSecret{KeyID: "k1", Ciphertext: []byte{0, 1, 2, 255}}
		require.NoError(t, s.SetPokeKey(t.Context(), "kit", first))
		got, ok, err := s.PokeKey(t.Context(), "kit")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, first, got, "bytes kept exactly")

		second := ports.SealedSecret{KeyID: "k2", Ciphertext: []byte("sealed-2")}
		require.NoError(t, s.SetPokeKey(t.Context(), "kit", second))
		got, _, err = s.PokeKey(t.Context(), "kit")
		require.NoError(t, err)
		assert.Equal(t, second, got, "setting again replaces")

		for _, d := range []string{"b", "a", "c", "B"} {
			require.NoError(t, s.SetPokeKey(t.Context(), d, ports.SealedSecret{KeyID: "k1", Ciphertext: []byte(d)}))
		}
		var listed []string
		for after := ""; ; {
			page, err := s.ListPokeKeys(t.Context(), after, 2)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(page), 2)
			if len(page) == 0 {
				break
			}
			for _, p := range page {
				listed = append(listed, p.Device)
			}
			after = page[len(page)-1].Device
		}
		assert.Equal(t, []string{"B", "a", "b", "c", "kit"}, listed, "byte order, every device once")

		existed, err := s.DeletePokeKey(t.Context(), "kit")
		require.NoError(t, err)
		assert.True(t, existed)
		existed, err = s.DeletePokeKey(t.Context(), "kit")
		require.NoError(t, err)
		assert.False(t, existed)
		_, ok, err = s.PokeKey(t.Context(), "kit")
		require.NoError(t, err)
		assert.False(t, ok)
		_, ok, err = s.PokeKey(t.Context(), "a")
		require.NoError(t, err)
		assert.True(t, ok, "other devices keep theirs")
	})

	t.Run("DeletedRangeIsGoneFromListAndSearch", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range 10 {
			batch = append(batch, captionstest.Make(i, "kit", "s1", fmt.Sprintf("coffee cup %d", i)))
			other := captionstest.Make(100+i, "other", "s2", fmt.Sprintf("coffee cup %d", i))
			other.Start, other.End = at(i), at(i).Add(2*time.Second) // same times, another device
			batch = append(batch, other)
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		for i := range 10 {
			for _, d := range []string{"kit", "other"} {
				_, err := s.CreateIntervention(t.Context(), nudgestest.Record(i, d, ports.VerdictYes, ports.DeliveryDelivered))
				require.NoError(t, err)
			}
		}

		since, until := at(3), at(7)
		deleted := drain(t, func(limit int) (int, error) {
			return s.DeleteDeviceCaptions(t.Context(), "kit", since, until, limit)
		}, 3)
		assert.Equal(t, 4, deleted, "starts 3, 4, 5, 6: since inclusive, until exclusive")
		deleted = drain(t, func(limit int) (int, error) {
			return s.DeleteDeviceInterventions(t.Context(), "kit", since, until, limit)
		}, 3)
		assert.Equal(t, 4, deleted)

		kept := []string{"cap-0000009", "cap-0000008", "cap-0000007", "cap-0000002", "cap-0000001", "cap-0000000"}
		assert.Equal(t, kept, captionIDs(t, s, ports.CaptionQuery{Device: "kit", Limit: 100}))
		assert.Equal(t, kept, captionIDs(t, s, ports.CaptionQuery{Device: "kit", Text: "coffee", Limit: 100}))
		assert.Empty(t, captionIDs(t, s, ports.CaptionQuery{Device: "kit", Text: "cup 4"}))
		for _, id := range captionIDs(t, s, ports.CaptionQuery{Text: "coffee cup", Limit: 100}) {
			assert.NotContains(t, []string{"cap-0000003", "cap-0000004", "cap-0000005", "cap-0000006"}, id, "not found by a search across devices")
		}
		assert.Len(t, captionIDs(t, s, ports.CaptionQuery{Device: "other", Limit: 100}), 10, "another device's captions at the same times are untouched")
		assert.Len(t, captionIDs(t, s, ports.CaptionQuery{Device: "other", Text: "cup 4", Limit: 100}), 1)

		assert.Equal(t, []int{9, 8, 7, 2, 1, 0}, recordSeconds(t, s, "kit"))
		assert.Len(t, recordSeconds(t, s, "other"), 10)
	})

	t.Run("NoBoundsDeletesAllOfTheDeviceOnly", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range 7 {
			batch = append(batch, captionstest.Make(i, "kit", "s1", "tea"), captionstest.Make(50+i, "other", "s2", "tea"))
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		_, err := s.CreateIntervention(t.Context(), nudgestest.Record(1, "kit", ports.VerdictNo, ports.DeliveryNone))
		require.NoError(t, err)
		_, err = s.CreateIntervention(t.Context(), nudgestest.Record(1, "other", ports.VerdictNo, ports.DeliveryNone))
		require.NoError(t, err)

		n, err := s.DeleteDeviceCaptions(t.Context(), "kit", time.Time{}, time.Time{}, 5)
		require.NoError(t, err)
		assert.Equal(t, 5, n, "one call deletes at most its limit")
		n, err = s.DeleteDeviceCaptions(t.Context(), "kit", time.Time{}, time.Time{}, 5)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		n, err = s.DeleteDeviceInterventions(t.Context(), "kit", time.Time{}, time.Time{}, 5)
		require.NoError(t, err)
		assert.Equal(t, 1, n)

		assert.Empty(t, captionIDs(t, s, ports.CaptionQuery{Device: "kit"}))
		assert.Empty(t, captionIDs(t, s, ports.CaptionQuery{Text: "tea", Device: "kit"}))
		assert.Len(t, captionIDs(t, s, ports.CaptionQuery{Text: "tea"}), 7)
		assert.Empty(t, recordSeconds(t, s, "kit"))
		assert.Len(t, recordSeconds(t, s, "other"), 1)

		n, err = s.DeleteDeviceCaptions(t.Context(), "nobody", time.Time{}, time.Time{}, 5)
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}

// drain repeats del while it returns limit, as callers do, and returns the total.
func drain(t *testing.T, del func(limit int) (int, error), limit int) int {
	t.Helper()
	total := 0
	for range 1000 {
		n, err := del(limit)
		require.NoError(t, err)
		require.LessOrEqual(t, n, limit, "one call deletes at most its limit")
		total += n
		if n < limit {
			return total
		}
	}
	t.Fatal("deletion never ended")
	return 0
}

func captionIDs(t *testing.T, s ports.CaptionReader, q ports.CaptionQuery) []string {
	t.Helper()
	page, err := s.QueryCaptions(t.Context(), q)
	require.NoError(t, err)
	ids := []string{}
	for _, c := range page.Captions {
		ids = append(ids, c.ID)
	}
	return ids
}

func recordSeconds(t *testing.T, s ports.InterventionStore, device string) []int {
	t.Helper()
	page, err := s.ListInterventions(t.Context(), ports.InterventionQuery{Device: device, Limit: ports.MaxInterventionLimit})
	require.NoError(t, err)
	out := []int{}
	for _, r := range page.Items {
		out = append(out, int(r.Time.Sub(base)/time.Second))
	}
	return out
}
