// Package biometricstest is the contract every biometric store keeps, as a
// test suite an adapter runs against its real database:
//
//	biometricstest.Run(t, biometricstest.Harness{NewLocation: ..., Open: ...})
package biometricstest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/ports"
)

// Store is what the suite drives: the biometric store, the nudge loop's
// source over it, and the decisions that record the windows they saw.
type Store interface {
	ports.BiometricStore
	ports.BiometricSource
	ports.InterventionStore
	Close() error
}

// Harness tells the suite how to reach the store under test.
type Harness struct {
	// NewLocation returns a fresh, empty database that lives as long as t.
	NewLocation func(t *testing.T) string
	// Open opens a store on a location, applying migrations.
	Open func(ctx context.Context, location string) (Store, error)
}

var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func num(v float64) *float64 { return &v }

// Make returns device's window i, starting i*10 s after a fixed instant and
// lasting 10 s, with heart rate hr.
func Make(i int, device string, hr float64) ports.BiometricWindow {
	start := base.Add(time.Duration(i) * 10 * time.Second)
	return ports.BiometricWindow{
		Device: device, WindowID: fmt.Sprintf("w-%05d", i), Start: start, Duration: 10 * time.Second,
		Features: map[string]*float64{"hrMean": num(hr), "hrMin": num(hr - 5), "hrMax": num(hr + 5),
			"movementIntensity": num(0.25), "qualityScore": num(0.9), "sdnn": nil},
		StoredAt: start.Add(11 * time.Second),
	}
}

// Run runs the contract as subtests of t.
func Run(t *testing.T, h Harness) {
	fresh := func(t *testing.T) Store {
		t.Helper()
		s, err := h.Open(t.Context(), h.NewLocation(t))
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}

	t.Run("SaveAndQueryKeepsEveryField", func(t *testing.T) {
		s := fresh(t)
		w := Make(1, "kit", 72)
		w.Features["futureField"] = num(3.5) // a later app's field is kept
		w.AlertLevel, w.Susceptibility = "HIGH ALERT", num(0.75)
		w.Risk = json.RawMessage(`{"alertLevel":"HIGH ALERT","overallSusceptibility":0.75}`)
		require.NoError(t, s.SaveBiometrics(t.Context(), []ports.BiometricWindow{w, Make(2, "kit", 80), Make(3, "other", 90)}))

		page, err := s.QueryBiometrics(t.Context(), ports.BiometricQuery{Device: "kit"})
		require.NoError(t, err)
		require.Len(t, page.Windows, 2)
		assert.Equal(t, "w-00002", page.Windows[0].WindowID, "newest first")
		got := page.Windows[1]
		assert.Equal(t, w.Start, got.Start)
		assert.Equal(t, w.Duration, got.Duration)
		assert.Equal(t, w.StoredAt, got.StoredAt)
		assert.Equal(t, w.AlertLevel, got.AlertLevel)
		require.NotNil(t, got.Susceptibility)
		assert.InDelta(t, 0.75, *got.Susceptibility, 1e-9)
		assert.JSONEq(t, string(w.Risk), string(got.Risk))
		assert.Equal(t, w.Features, got.Features, "every feature, nulls and unknown fields included")
		assert.Empty(t, page.NextCursor)
	})

	t.Run("RepeatedWindowIDIsStoredOnceFirstKept", func(t *testing.T) {
		s := fresh(t)
		first := Make(1, "kit", 72)
		again := first
		again.StoredAt = first.StoredAt.Add(time.Minute)
		again.Features = map[string]*float64{"hrMean": num(150)}
		require.NoError(t, s.SaveBiometrics(t.Context(), []ports.BiometricWindow{first}))
		require.NoError(t, s.SaveBiometrics(t.Context(), []ports.BiometricWindow{again, again}))
		other := first
		other.Device = "other" // the same id on another device is another window
		require.NoError(t, s.SaveBiometrics(t.Context(), []ports.BiometricWindow{other}))

		page, err := s.QueryBiometrics(t.Context(), ports.BiometricQuery{Device: "kit"})
		require.NoError(t, err)
		require.Len(t, page.Windows, 1)
		assert.Equal(t, first.StoredAt, page.Windows[0].StoredAt)
		assert.InDelta(t, 72, *page.Windows[0].Features["hrMean"], 1e-9)
		at, ok, err := s.BiometricStoredAt(t.Context(), "kit", first.WindowID)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, first.StoredAt, at)
		_, ok, err = s.BiometricStoredAt(t.Context(), "kit", "never")
		require.NoError(t, err)
		assert.False(t, ok)
		all, err := s.QueryBiometrics(t.Context(), ports.BiometricQuery{})
		require.NoError(t, err)
		assert.Len(t, all.Windows, 2)
	})

	t.Run("PagesRangesAndCursors", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.BiometricWindow
		for i := range 7 {
			batch = append(batch, Make(i, "kit", 70))
		}
		tie := Make(3, "kit", 70)
		tie.WindowID = "w-tie" // same start as w-00003
		batch = append(batch, tie)
		require.NoError(t, s.SaveBiometrics(t.Context(), batch))
		var ids []string
		q := ports.BiometricQuery{Device: "kit", Limit: 3}
		for range 10 {
			page, err := s.QueryBiometrics(t.Context(), q)
			require.NoError(t, err)
			for _, w := range page.Windows {
				ids = append(ids, w.WindowID)
			}
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		assert.Len(t, ids, 8, "every window once across pages: %v", ids)
		assert.ElementsMatch(t, []string{"w-00000", "w-00001", "w-00002", "w-00003", "w-tie", "w-00004", "w-00005", "w-00006"}, ids)
		assert.Equal(t, "w-00006", ids[0])

		page, err := s.QueryBiometrics(t.Context(), ports.BiometricQuery{Since: Make(2, "", 0).Start, Until: Make(4, "", 0).Start})
		require.NoError(t, err)
		assert.Len(t, page.Windows, 3, "since inclusive, until exclusive")

		_, err = s.QueryBiometrics(t.Context(), ports.BiometricQuery{Cursor: "!!"})
		assert.ErrorIs(t, err, ports.ErrBadCaptionCursor)
		_, err = s.QueryBiometrics(t.Context(), ports.BiometricQuery{Cursor: ports.CaptionCursor{Start: base, ID: "x"}.String()})
		assert.ErrorIs(t, err, ports.ErrBadCaptionCursor)
	})

	t.Run("RetentionAndDeviceDeletion", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.BiometricWindow
		for i := range 6 {
			batch = append(batch, Make(i, "kit", 70), Make(i, "other", 70))
		}
		require.NoError(t, s.SaveBiometrics(t.Context(), batch))
		n, err := s.DeleteBiometricsBefore(t.Context(), Make(2, "", 0).Start, 100)
		require.NoError(t, err)
		assert.Equal(t, 4, n)
		n, err = s.DeleteDeviceBiometrics(t.Context(), "kit", Make(3, "", 0).Start, Make(5, "", 0).Start, 1)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "bounded by limit")
		n, err = s.DeleteDeviceBiometrics(t.Context(), "kit", time.Time{}, time.Time{}, 100)
		require.NoError(t, err)
		assert.Equal(t, 3, n)
		page, err := s.QueryBiometrics(t.Context(), ports.BiometricQuery{})
		require.NoError(t, err)
		assert.Len(t, page.Windows, 4, "the other device's windows are left")
	})

	t.Run("EachWindowIsNewForOneJudgement", func(t *testing.T) {
		s := fresh(t)
		ctx := t.Context()
		require.NoError(t, s.SaveBiometrics(ctx, []ports.BiometricWindow{Make(0, "kit", 70), Make(1, "kit", 130), Make(1, "other", 70)}))
		since := base.Add(-time.Hour)
		set, err := s.RecentBiometrics(ctx, "kit", since, since)
		require.NoError(t, err)
		require.Len(t, set.Windows, 2)
		assert.Equal(t, "w-00000", set.Windows[0].ID, "oldest first")
		assert.True(t, set.HasNew())
		assert.Equal(t, Make(1, "", 0).End(), set.Windows[1].Time, "a window's time is its end")
		assert.InDelta(t, 130, set.Windows[1].Features["hrMean"], 1e-9)
		assert.NotContains(t, set.Windows[1].Features, "sdnn", "null features are left out")

		// Stored after the read: not covered by its mark.
		require.NoError(t, s.SaveBiometrics(ctx, []ports.BiometricWindow{Make(2, "kit", 70)}))
		require.NoError(t, s.MarkBiometricsJudged(ctx, "kit", set.Mark))
		set, err = s.RecentBiometrics(ctx, "kit", since, since)
		require.NoError(t, err)
		require.Len(t, set.Windows, 3)
		assert.False(t, set.Windows[0].New)
		assert.False(t, set.Windows[1].New)
		assert.True(t, set.Windows[2].New)
		require.NoError(t, s.MarkBiometricsJudged(ctx, "kit", set.Mark))
		set, err = s.RecentBiometrics(ctx, "kit", since, since)
		require.NoError(t, err)
		assert.False(t, set.HasNew())

		other, err := s.RecentBiometrics(ctx, "other", since, since)
		require.NoError(t, err)
		assert.True(t, other.HasNew(), "marks are per device")

		devices, err := s.ActiveBiometricDevices(ctx, Make(1, "", 0).End())
		require.NoError(t, err)
		assert.Equal(t, []string{"kit", "other"}, devices)
		devices, err = s.ActiveBiometricDevices(ctx, Make(2, "", 0).End())
		require.NoError(t, err)
		assert.Equal(t, []string{"kit"}, devices)
	})

	t.Run("DecisionsRecordTheWindowsTheySaw", func(t *testing.T) {
		s := fresh(t)
		rec, err := s.CreateIntervention(t.Context(), ports.Intervention{Device: "kit", Time: base, Engine: "rules",
			Verdict: ports.VerdictNo, CaptionIDs: []string{"c1"}, BiometricIDs: []string{"w-1", "w-2"}, Status: ports.DeliveryNone})
		require.NoError(t, err)
		assert.Equal(t, []string{"w-1", "w-2"}, rec.BiometricIDs)
		page, err := s.ListInterventions(t.Context(), ports.InterventionQuery{Device: "kit"})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		assert.Equal(t, []string{"w-1", "w-2"}, page.Items[0].BiometricIDs)
	})
}
