// Package nudgestest is the contract a database keeps as the nudge loop's
// caption source and audit trail (ports.CaptionSource and
// ports.InterventionStore), as a test suite an adapter runs against its
// real database:
//
//	nudgestest.Run(t, nudgestest.Harness{NewLocation: ..., Open: ...})
package nudgestest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

// Store is what the suite needs of a database: its captions are written
// through the caption store, then read back the nudge loop's way.
type Store interface {
	ports.CaptionStore
	ports.CaptionSource
	ports.InterventionStore
}

// Harness tells the suite how to reach the store under test.
type Harness struct {
	// NewLocation returns a fresh, empty database (a file path or a DSN)
	// that lives as long as t.
	NewLocation func(t *testing.T) string
	// Open opens a store on a location, applying migrations. The suite
	// closes what it opens.
	Open func(ctx context.Context, location string) (Store, error)
}

// base is the instant the suite's records start from.
var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// Record returns a decision made i seconds after a fixed instant.
func Record(i int, device string, verdict ports.Verdict, status ports.DeliveryStatus) ports.Intervention {
	return ports.Intervention{
		Device: device, Time: base.Add(time.Duration(i) * time.Second),
		Engine: "llm", Verdict: verdict, Reasoning: fmt.Sprintf("reason %d", i),
		CaptionIDs: []string{fmt.Sprintf("cap-%07d", i), fmt.Sprintf("cap-%07d", i+1)},
		Model:      "gpt-test", PromptTokens: 100 + i, CompletionTokens: 7,
		Nudge: "Drink some water.", Status: status,
	}
}

// Run runs the contract as subtests of t.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T, loc string) Store {
		t.Helper()
		s, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}
	fresh := func(t *testing.T) Store { return open(t, h.NewLocation(t)) }
	create := func(t *testing.T, s Store, recs ...ports.Intervention) []ports.Intervention {
		t.Helper()
		out := make([]ports.Intervention, len(recs))
		for i, r := range recs {
			stored, err := s.CreateIntervention(t.Context(), r)
			require.NoError(t, err)
			require.NotEmpty(t, stored.ID)
			out[i] = stored
		}
		return out
	}

	t.Run("CreateAndListEveryFieldNewestFirst", func(t *testing.T) {
		s := fresh(t)
		a := Record(1, "kit", ports.VerdictNo, ports.DeliveryNone)
		a.Time = a.Time.Add(123456789 * time.Nanosecond) // kept to the microsecond
		b := Record(2, "kit", ports.VerdictYes, ports.DeliveryDelivered)
		b.DeliveredAt, b.Attempts = b.Time.Add(1500*time.Millisecond), 2
		c := Record(3, "other", ports.VerdictError, ports.DeliveryNone)
		c.Error, c.CaptionIDs, c.Nudge = "model server answered 500: boom", nil, ""
		stored := create(t, s, a, b, c)
		assert.NotEqual(t, stored[0].ID, stored[1].ID)
		assert.Equal(t, a.Time.Truncate(time.Microsecond), stored[0].Time)
		assert.Equal(t, []string{}, stored[2].CaptionIDs, "no caption ids is an empty list, not null")

		page, err := s.ListInterventions(t.Context(), ports.InterventionQuery{})
		require.NoError(t, err)
		assert.Empty(t, page.NextCursor)
		assert.Equal(t, []ports.Intervention{stored[2], stored[1], stored[0]}, page.Items)
		assert.Equal(t, []string{"cap-0000002", "cap-0000003"}, page.Items[1].CaptionIDs)
	})

	t.Run("Filters", func(t *testing.T) {
		s := fresh(t)
		create(t, s, Record(1, "kit", ports.VerdictNo, ports.DeliveryNone), Record(2, "other", ports.VerdictNo, ports.DeliveryNone),
			Record(3, "kit", ports.VerdictNo, ports.DeliveryNone), Record(4, "kit", ports.VerdictNo, ports.DeliveryNone))
		assert.Equal(t, []int{4, 3, 1}, seconds(t, s, ports.InterventionQuery{Device: "kit"}))
		assert.Equal(t, []int{4, 3, 2}, seconds(t, s, ports.InterventionQuery{Since: base.Add(2 * time.Second)}), "since is inclusive")
		assert.Equal(t, []int{4, 3}, seconds(t, s, ports.InterventionQuery{Device: "kit", Since: base.Add(2 * time.Second)}))
		assert.Empty(t, seconds(t, s, ports.InterventionQuery{Device: "nobody"}))
	})

	t.Run("DeviceSetScopesTheList", func(t *testing.T) {
		s := fresh(t)
		create(t, s, Record(1, "kit", ports.VerdictNo, ports.DeliveryNone), Record(2, "bob", ports.VerdictNo, ports.DeliveryNone),
			Record(3, "ann", ports.VerdictNo, ports.DeliveryNone), Record(4, "kit", ports.VerdictNo, ports.DeliveryNone))
		assert.Equal(t, []int{4, 3, 1}, seconds(t, s, ports.InterventionQuery{Devices: []string{"kit", "ann"}}))
		assert.Empty(t, seconds(t, s, ports.InterventionQuery{Devices: []string{"kit"}, Device: "bob"}), "device outside the set")
		assert.Equal(t, []int{3}, seconds(t, s, ports.InterventionQuery{Devices: []string{"kit", "ann"}, Device: "ann"}))
		assert.Empty(t, seconds(t, s, ports.InterventionQuery{Devices: []string{}}), "an empty set matches nothing, not everything")
		assert.Len(t, seconds(t, s, ports.InterventionQuery{}), 4, "nil is no filter")
	})

	t.Run("CursorPagesWithoutRepeatsOrGapsWhileRecordsArrive", func(t *testing.T) {
		s := fresh(t)
		var want []string
		for i := range 40 {
			r := create(t, s, Record(i/3, "kit", ports.VerdictNo, ports.DeliveryNone))[0] // ties on time break on id
			want = append(want, r.ID)
		}
		slices.Reverse(want) // same time: the later id first
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { // newer decisions keep arriving while the client pages
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := s.CreateIntervention(ctx, Record(1000+i, "kit", ports.VerdictNo, ports.DeliveryNone)); err != nil && ctx.Err() == nil {
					t.Errorf("concurrent create: %v", err)
					return
				}
			}
		})
		// A cursor just below the live records: paging then walks the older ones.
		q := ports.InterventionQuery{Limit: 7, Cursor: ports.InterventionCursor(base.Add(1000*time.Second), 1)}
		var got []string
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100, "paging does not end")
			page, err := s.ListInterventions(t.Context(), q)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(page.Items), 7)
			for _, r := range page.Items {
				got = append(got, r.ID)
			}
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		cancel()
		wg.Wait()
		assert.Equal(t, want, got)
	})

	t.Run("LimitBounds", func(t *testing.T) {
		s := fresh(t)
		for i := range ports.MaxInterventionLimit + 3 {
			create(t, s, Record(i, "kit", ports.VerdictNo, ports.DeliveryNone))
		}
		for limit, want := range map[int]int{0: ports.DefaultInterventionLimit, -1: ports.DefaultInterventionLimit, 1: 1, 10_000: ports.MaxInterventionLimit} {
			page, err := s.ListInterventions(t.Context(), ports.InterventionQuery{Limit: limit})
			require.NoError(t, err)
			assert.Len(t, page.Items, want, "limit %d", limit)
			assert.NotEmpty(t, page.NextCursor)
		}
	})

	t.Run("BadCursor", func(t *testing.T) {
		s := fresh(t)
		for _, bad := range []string{"!!!", "AAAA", ports.CaptionCursor{Start: base, ID: "cap-1"}.String(), ports.InterventionCursor(base, 0)} {
			_, err := s.ListInterventions(t.Context(), ports.InterventionQuery{Cursor: bad})
			assert.ErrorIs(t, err, ports.ErrBadCaptionCursor, bad)
		}
	})

	t.Run("UpdateDeliveryAndLastDelivered", func(t *testing.T) {
		s := fresh(t)
		last, err := s.LastDelivered(t.Context(), "kit")
		require.NoError(t, err)
		assert.True(t, last.IsZero(), "never delivered")

		recs := create(t, s, Record(1, "kit", ports.VerdictYes, ports.DeliveryPending),
			Record(2, "kit", ports.VerdictYes, ports.DeliveryPending), Record(3, "other", ports.VerdictYes, ports.DeliveryPending))
		delivered := base.Add(90*time.Second + 777*time.Nanosecond)
		require.NoError(t, s.UpdateDelivery(t.Context(), recs[0].ID, ports.DeliveryUpdate{Status: ports.DeliverySending, Attempts: 1}))
		require.NoError(t, s.UpdateDelivery(t.Context(), recs[0].ID, ports.DeliveryUpdate{Status: ports.DeliveryDelivered, Attempts: 1, DeliveredAt: delivered}))
		// A failed one with a later time does not count.
		require.NoError(t, s.UpdateDelivery(t.Context(), recs[1].ID, ports.DeliveryUpdate{Status: ports.DeliveryFailed, Attempts: 5, Error: "deliver: notifier answered 502"}))
		require.NoError(t, s.UpdateDelivery(t.Context(), recs[2].ID, ports.DeliveryUpdate{Status: ports.DeliveryDelivered, Attempts: 1, DeliveredAt: delivered.Add(time.Hour)}))

		last, err = s.LastDelivered(t.Context(), "kit")
		require.NoError(t, err)
		assert.Equal(t, delivered.Truncate(time.Microsecond), last)

		page, err := s.ListInterventions(t.Context(), ports.InterventionQuery{Device: "kit"})
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		assert.Equal(t, ports.DeliveryFailed, page.Items[0].Status)
		assert.Equal(t, 5, page.Items[0].Attempts)
		assert.Equal(t, "deliver: notifier answered 502", page.Items[0].Error)
		assert.True(t, page.Items[0].DeliveredAt.IsZero())
		assert.Equal(t, ports.DeliveryDelivered, page.Items[1].Status)
		assert.Equal(t, delivered.Truncate(time.Microsecond), page.Items[1].DeliveredAt)

		assert.Error(t, s.UpdateDelivery(t.Context(), "999999", ports.DeliveryUpdate{Status: ports.DeliveryDelivered}), "unknown id")
		assert.Error(t, s.UpdateDelivery(t.Context(), "not-an-id", ports.DeliveryUpdate{Status: ports.DeliveryDelivered}))
	})

	t.Run("RecentCaptionsByChunkEndOldestFirst", func(t *testing.T) {
		s := fresh(t)
		// Make(i) ends at i+2 s.
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			captionstest.Make(3, "kit", "s1", "three"), captionstest.Make(1, "kit", "s1", "one"),
			captionstest.Make(2, "other", "s2", "two"), captionstest.Make(5, "kit", "s1", "five"),
		}))
		at5 := base.Add(5 * time.Second)
		got, err := s.RecentCaptions(t.Context(), "kit", at5, at5) // the one ending at 5 s is in
		require.NoError(t, err)
		assert.Equal(t, []ports.CaptionRef{
			{ID: "cap-0000003", Time: base.Add(5 * time.Second), Text: "three", New: true},
			{ID: "cap-0000005", Time: base.Add(7 * time.Second), Text: "five", New: true},
		}, got.Captions, "never judged: every caption is new")
		assert.NotEmpty(t, got.Mark)
		got, err = s.RecentCaptions(t.Context(), "kit", base.Add(time.Hour), base.Add(time.Hour))
		require.NoError(t, err)
		assert.Empty(t, got.Captions)
		got, err = s.RecentCaptions(t.Context(), "nobody", base, base)
		require.NoError(t, err)
		assert.Empty(t, got.Captions)
	})

	t.Run("JudgedMarkLeavesContextAndTakesLateCaptionsOnce", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			captionstest.Make(10, "kit", "s1", "ends 12"), captionstest.Make(20, "kit", "s1", "ends 22"),
			captionstest.Make(21, "other", "s2", "other device"),
		}))
		since, unjudgedSince := base.Add(20*time.Second), base.Add(10*time.Second)
		first, err := s.RecentCaptions(t.Context(), "kit", since, unjudgedSince)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000010", "cap-0000020"}, refIDs(first.Captions, false), "unjudged: the margin's caption too")
		assert.Equal(t, []string{"cap-0000010", "cap-0000020"}, refIDs(first.Captions, true))
		// Stored after the read: the mark does not cover it.
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{captionstest.Make(30, "kit", "s1", "ends 32")}))
		require.NoError(t, s.MarkJudged(t.Context(), "kit", first.Mark))

		second, err := s.RecentCaptions(t.Context(), "kit", since, unjudgedSince)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000020", "cap-0000030"}, refIDs(second.Captions, false),
			"the window's judged caption is context; the margin's judged one is gone")
		assert.Equal(t, []string{"cap-0000030"}, refIDs(second.Captions, true))

		// Stored late: ended before everything judged, inside the margin.
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{captionstest.Make(9, "kit", "s1", "late")}))
		require.NoError(t, s.MarkJudged(t.Context(), "kit", second.Mark))
		third, err := s.RecentCaptions(t.Context(), "kit", since, unjudgedSince)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000009"}, refIDs(third.Captions, true), "a late caption is new once")
		require.NoError(t, s.MarkJudged(t.Context(), "kit", third.Mark))
		fourth, err := s.RecentCaptions(t.Context(), "kit", since, unjudgedSince)
		require.NoError(t, err)
		assert.Empty(t, refIDs(fourth.Captions, true), "nothing stored since: nothing new")
		assert.Equal(t, []string{"cap-0000020", "cap-0000030"}, refIDs(fourth.Captions, false))

		other, err := s.RecentCaptions(t.Context(), "other", since, unjudgedSince)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000021"}, refIDs(other.Captions, true), "marks are per device")

		assert.Error(t, s.MarkJudged(t.Context(), "kit", "not a mark"), "a mark the store did not give out")
	})

	t.Run("JudgedMarkIsSharedAndSurvivesReopen", func(t *testing.T) {
		loc := h.NewLocation(t)
		a, b := open(t, loc), open(t, loc)
		require.NoError(t, a.SaveCaptions(t.Context(), []ports.Caption{captionstest.Make(1, "kit", "s1", "one")}))
		w, err := a.RecentCaptions(t.Context(), "kit", base, base)
		require.NoError(t, err)
		require.NoError(t, a.MarkJudged(t.Context(), "kit", w.Mark))
		w, err = b.RecentCaptions(t.Context(), "kit", base, base)
		require.NoError(t, err)
		assert.Equal(t, []string{"cap-0000001"}, refIDs(w.Captions, false))
		assert.Empty(t, refIDs(w.Captions, true), "another store on the database sees the mark")

		c, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		w, err = c.RecentCaptions(t.Context(), "kit", base, base)
		require.NoError(t, c.Close())
		require.NoError(t, err)
		assert.Empty(t, refIDs(w.Captions, true), "a reopened store keeps the mark")
	})

	t.Run("RecentCaptionsKeepsTheNewestWhenTooMany", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range ports.MaxRecentCaptions + 5 {
			batch = append(batch, captionstest.Make(i, "kit", "s1", "row"))
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		w, err := s.RecentCaptions(t.Context(), "kit", base, base)
		require.NoError(t, err)
		got := w.Captions
		require.Len(t, got, ports.MaxRecentCaptions)
		assert.Equal(t, "cap-0000005", got[0].ID)
		assert.Equal(t, batch[len(batch)-1].ID, got[len(got)-1].ID)
	})

	t.Run("ActiveDevices", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			captionstest.Make(1, "zed", "s1", "a"), captionstest.Make(8, "zed", "s1", "b"),
			captionstest.Make(5, "amy", "s2", "c"), captionstest.Make(2, "old", "s3", "d"),
		}))
		got, err := s.ActiveDevices(t.Context(), base.Add(7*time.Second)) // amy's ends at 7 s: in
		require.NoError(t, err)
		assert.Equal(t, []string{"amy", "zed"}, got)
		got, err = s.ActiveDevices(t.Context(), base.Add(time.Hour))
		require.NoError(t, err)
		assert.Empty(t, got)
	})

	t.Run("TwoStoresOnOneDatabaseShareRecordsAndReopenKeepsThem", func(t *testing.T) {
		loc := h.NewLocation(t)
		a, b := open(t, loc), open(t, loc)
		rec := create(t, a, Record(1, "kit", ports.VerdictYes, ports.DeliveryPending))[0]
		require.NoError(t, b.UpdateDelivery(t.Context(), rec.ID, ports.DeliveryUpdate{Status: ports.DeliveryDelivered, Attempts: 1, DeliveredAt: base}))
		last, err := a.LastDelivered(t.Context(), "kit")
		require.NoError(t, err)
		assert.Equal(t, base, last)

		c, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		page, err := c.ListInterventions(t.Context(), ports.InterventionQuery{})
		require.NoError(t, c.Close())
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		assert.Equal(t, rec.ID, page.Items[0].ID)
	})
}

// seconds lists the records q selects as their second offsets from base.
func seconds(t *testing.T, s ports.InterventionStore, q ports.InterventionQuery) []int {
	t.Helper()
	page, err := s.ListInterventions(t.Context(), q)
	require.NoError(t, err)
	var out []int
	for _, r := range page.Items {
		out = append(out, int(r.Time.Sub(base)/time.Second))
	}
	return out
}

// refIDs lists the ids of cs, only the new ones when onlyNew.
func refIDs(cs []ports.CaptionRef, onlyNew bool) []string {
	var out []string
	for _, c := range cs {
		if c.New || !onlyNew {
			out = append(out, c.ID)
		}
	}
	return out
}
