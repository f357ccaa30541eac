// Package captionstest is the contract every ports.CaptionStore keeps, as a
// test suite an adapter runs against its real database:
//
//	captionstest.Run(t, captionstest.Harness{NewLocation: ..., Open: ...})
package captionstest

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
)

// Harness tells the suite how to reach the store under test.
type Harness struct {
	// NewLocation returns a fresh, empty database (a file path or a DSN)
	// that lives as long as t.
	NewLocation func(t *testing.T) string
	// Open opens a store on a location, applying migrations. The suite
	// closes what it opens.
	Open func(ctx context.Context, location string) (ports.CaptionStore, error)
}

// base is the instant the suite's captions start from.
var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// Make returns a caption starting i seconds after a fixed instant.
func Make(i int, device, stream, text string) ports.Caption {
	start := base.Add(time.Duration(i) * time.Second)
	return ports.Caption{
		ID: fmt.Sprintf("cap-%07d", i), Device: device, StreamID: stream,
		Start: start, End: start.Add(2 * time.Second),
		ChunkStartS: float64(i), ChunkEndS: float64(i) + 2,
		Text: text, LatencyMS: 812.25, Tokens: int64(i % 40), Backend: "backend-a", Model: "model-a",
	}
}

// Run runs the contract as subtests of t.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T, loc string) ports.CaptionStore {
		t.Helper()
		s, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}
	fresh := func(t *testing.T) ports.CaptionStore { return open(t, h.NewLocation(t)) }

	t.Run("SaveAndQueryNewestFirst", func(t *testing.T) {
		s := fresh(t)
		want := []ports.Caption{Make(1, "kit", "s1", "one"), Make(3, "kit", "s1", "three"), Make(2, "kit", "s1", "two")}
		want[1].Start = want[1].Start.Add(123456789 * time.Nanosecond) // kept to the microsecond
		require.NoError(t, s.SaveCaptions(t.Context(), want))
		page, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{})
		require.NoError(t, err)
		assert.Equal(t, normalize(want[1], want[2], want[0]), page.Captions)
		assert.Empty(t, page.NextCursor)
	})

	t.Run("SavingABatchAgainStoresItOnce", func(t *testing.T) {
		s := fresh(t)
		batch := []ports.Caption{Make(1, "kit", "s1", "one"), Make(2, "kit", "s1", "two")}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		require.NoError(t, s.SaveCaptions(t.Context(), append(batch, Make(3, "kit", "s1", "three"))))
		require.NoError(t, s.SaveCaptions(t.Context(), nil))
		assert.Equal(t, []string{"cap-0000003", "cap-0000002", "cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{}))
	})

	t.Run("Filters", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "a"), Make(2, "kit", "s2", "b"), Make(3, "other", "s3", "c"), Make(4, "kit", "s2", "d"),
		}))
		assert.Equal(t, []string{"cap-0000004", "cap-0000002", "cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Device: "kit"}))
		assert.Equal(t, []string{"cap-0000004", "cap-0000002"}, queryIDs(t, s, ports.CaptionQuery{StreamID: "s2"}))
		assert.Equal(t, []string{"cap-0000003", "cap-0000002"}, queryIDs(t, s, ports.CaptionQuery{
			Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second)}), "since inclusive, until exclusive")
		assert.Equal(t, []string{"cap-0000002"}, queryIDs(t, s, ports.CaptionQuery{Device: "kit", Until: base.Add(4 * time.Second), Since: base.Add(time.Second + time.Millisecond)}))
		assert.Empty(t, queryIDs(t, s, ports.CaptionQuery{Device: "nobody"}))
	})

	t.Run("DeviceSetScopesEveryQuery", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "coffee a"), Make(2, "bob", "s2", "coffee b"), Make(3, "ann", "s3", "coffee c"), Make(4, "kit", "s1", "tea d"),
		}))
		assert.Equal(t, []string{"cap-0000004", "cap-0000003", "cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Devices: []string{"kit", "ann"}}))
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Devices: []string{"kit"}, Text: "coffee"}), "with search")
		assert.Empty(t, queryIDs(t, s, ports.CaptionQuery{Devices: []string{"kit"}, Device: "bob"}), "device outside the set")
		assert.Equal(t, []string{"cap-0000003"}, queryIDs(t, s, ports.CaptionQuery{Devices: []string{"kit", "ann"}, Device: "ann"}))
		assert.Empty(t, queryIDs(t, s, ports.CaptionQuery{Devices: []string{}}), "an empty set matches nothing, not everything")
		assert.Len(t, queryIDs(t, s, ports.CaptionQuery{}), 4, "nil is no filter")
	})

	t.Run("FullTextSearch", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "The wearer pours coffee"),
			Make(2, "kit", "s1", "A dog runs across the park"),
			Make(3, "other", "s2", "Coffee cups on a table"),
			Make(4, "kit", "s1", "The wearer reads a book"),
		}))
		assert.Equal(t, []string{"cap-0000003", "cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "coffee"}))
		assert.Equal(t, []string{"cap-0000003", "cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "COFFEE"}))
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "coffee", Device: "kit"}))
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "wearer coffee"}), "every word")
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "pour"}), "stemmed")
		assert.Equal(t, []string{"cap-0000002"}, queryIDs(t, s, ports.CaptionQuery{Text: "dogs running"}), "stemmed")
		assert.Empty(t, queryIDs(t, s, ports.CaptionQuery{Text: "tea"}))
		for _, odd := range []string{`coffee"`, `("coffee`, `coffee AND`, `-coffee`, `*`, `NEAR(`, `'; DROP TABLE captions; --`} {
			_, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Text: odd})
			assert.NoError(t, err, "q=%q", odd)
		}
	})

	t.Run("SearchMeansEveryWordStemmedNothingElse", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{
			Make(1, "kit", "s1", "A donut on a plate"),
			Make(2, "kit", "s1", "The bank of a river"),
			Make(3, "kit", "s1", "Coffee and a donut at the bank"),
			Make(4, "kit", "s1", "A quiet street"),
		}))
		for q, want := range map[string][]string{
			"donut":            {"cap-0000003", "cap-0000001"},
			"DONUTS":           {"cap-0000003", "cap-0000001"}, // case-insensitive, stemmed
			"-donut":           {"cap-0000003", "cap-0000001"}, // a minus is not "without"
			"donut!!":          {"cap-0000003", "cap-0000001"}, // punctuation separates words
			"donut or bank":    {"cap-0000003"},                // "or" is a stop word, not an operator
			"donut OR bank":    {"cap-0000003"},                // nor in capitals
			`"plate donut"`:    {"cap-0000001"},                // quotes are not a phrase
			"the donut":        {"cap-0000003", "cap-0000001"}, // stop words are dropped
			"banks rivers":     {"cap-0000002"},                // every word
			"a a":              nil,                            // only stop words: nothing matches
			"!!! ...":          nil,                            // no word at all: nothing matches
			"donut & !plate":   {"cap-0000001"},                // tsquery syntax is plain text
			"donut <-> plate":  {"cap-0000001"},
			"donut NEAR plate": nil, // "near" is a word to find
		} {
			assert.Equal(t, want, queryIDs(t, s, ports.CaptionQuery{Text: q}), "q=%q", q)
		}
	})

	t.Run("BadBytesAreTheCallersMistakeNotAnOutage", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(1, "kit", "s1", "a donut")}))
		for _, tc := range []struct {
			param string
			q     ports.CaptionQuery
		}{
			{"device", ports.CaptionQuery{Device: "kit\x00"}},
			{"device", ports.CaptionQuery{Device: "kit\xff"}},
			{"stream", ports.CaptionQuery{StreamID: "s1\x00"}},
			{"stream", ports.CaptionQuery{StreamID: "\xc3\x28"}},
			{"q", ports.CaptionQuery{Text: "\x00"}},
			{"q", ports.CaptionQuery{Text: "donut \xff"}},
			{"since", ports.CaptionQuery{Since: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{"until", ports.CaptionQuery{Until: time.Date(300_000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		} {
			_, err := s.QueryCaptions(t.Context(), tc.q)
			var invalid *ports.InvalidCaptionQueryError
			if assert.ErrorAs(t, err, &invalid, "%+v", tc.q) {
				assert.Equal(t, tc.param, invalid.Param)
				assert.ErrorIs(t, err, ports.ErrInvalidCaptionQuery)
			}
		}
		for _, cur := range []ports.CaptionCursor{
			{Start: base, ID: "cap\x00"},
			{Start: base, ID: "cap\xff"},
			{Start: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), ID: "cap-0000001"},
			{Start: time.Date(290_000, 1, 1, 0, 0, 0, 0, time.UTC), ID: "cap-0000001"},
		} {
			_, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Cursor: cur.String()})
			assert.ErrorIs(t, err, ports.ErrBadCaptionCursor, "%+v", cur)
		}
	})

	t.Run("SearchCostFollowsThePageNotTheCorpus", func(t *testing.T) {
		s := fresh(t)
		// More matches of "wearer" than a search takes from the index, all on
		// one device and newer than every caption of another device, "kit",
		// whose only three matches are its three oldest captions.
		kitRows := ports.SearchScanRows + 1000
		var batch []ports.Caption
		for i := range kitRows {
			text := "an empty room"
			if i < 3 {
				text = "the wearer sits"
			}
			batch = append(batch, Make(i, "kit", "s1", text))
		}
		for i := range ports.SearchIndexRows + 1 {
			batch = append(batch, Make(kitRows+i, "crowd", "s2", "the wearer walks"))
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))

		page, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Text: "wearer", Limit: 10})
		require.NoError(t, err)
		assert.Len(t, page.Captions, 10, "a common word fills its page")
		assert.Equal(t, fmt.Sprintf("cap-%07d", kitRows+ports.SearchIndexRows), page.Captions[0].ID)
		assert.NotEmpty(t, page.NextCursor)

		q := ports.CaptionQuery{Device: "kit", Text: "wearer", Limit: 10}
		page, err = s.QueryCaptions(t.Context(), q)
		require.NoError(t, err)
		assert.Empty(t, page.Captions, "the first page examines only the newest %d of kit's captions", ports.SearchScanRows)
		require.NotEmpty(t, page.NextCursor, "and says where to go on")
		var got []string
		for pages := 1; page.NextCursor != ""; pages++ {
			require.Less(t, pages, 10, "paging does not end")
			q.Cursor = page.NextCursor
			page, err = s.QueryCaptions(t.Context(), q)
			require.NoError(t, err)
			for _, c := range page.Captions {
				got = append(got, c.ID)
			}
		}
		assert.Equal(t, []string{"cap-0000002", "cap-0000001", "cap-0000000"}, got)
	})

	t.Run("LimitBounds", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range ports.MaxCaptionLimit + 10 {
			batch = append(batch, Make(i, "kit", "s1", "row"))
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		for limit, want := range map[int]int{0: ports.DefaultCaptionLimit, -3: ports.DefaultCaptionLimit, 1: 1, 500: 500, 10_000: 500} {
			page, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Limit: limit})
			require.NoError(t, err)
			assert.Len(t, page.Captions, want, "limit %d", limit)
			assert.NotEmpty(t, page.NextCursor)
		}
	})

	t.Run("CursorPagesWithoutRepeatsOrGapsWhileRowsArrive", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range 100 {
			c := Make(i/3, "kit", "s1", "espresso shot") // three captions share each start: ties break on id
			c.ID = fmt.Sprintf("cap-%03d", i)
			batch = append(batch, c)
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		want := make([]string, 0, len(batch))
		for _, c := range batch {
			want = append(want, c.ID)
		}
		slices.SortFunc(want, func(a, b string) int { return -compareCaptions(batch, a, b) })

		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { // newer captions keep arriving while the client pages
			for i := 0; ctx.Err() == nil; i++ {
				c := Make(1000+i, "kit", "s1", "coffee later")
				if err := s.SaveCaptions(ctx, []ports.Caption{c}); err != nil && ctx.Err() == nil {
					t.Errorf("concurrent save: %v", err)
					return
				}
			}
		})
		for _, q := range []ports.CaptionQuery{{Limit: 7, Until: base.Add(1000 * time.Second)}, {Limit: 7, Text: "espresso"}} {
			var got []string
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100, "paging does not end")
				page, err := s.QueryCaptions(t.Context(), q)
				require.NoError(t, err)
				for _, c := range page.Captions {
					got = append(got, c.ID)
				}
				if page.NextCursor == "" {
					break
				}
				q.Cursor = page.NextCursor
			}
			assert.Equal(t, want, got, "query %+v", q)
		}
		cancel()
		wg.Wait()

		// The first page of a live query: newer rows come first, then the cursor resumes.
		page, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Limit: 2})
		require.NoError(t, err)
		require.Len(t, page.Captions, 2)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(999_999, "kit", "s1", "newest")}))
		next, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Limit: 2, Cursor: page.NextCursor})
		require.NoError(t, err)
		require.Len(t, next.Captions, 2)
		assert.True(t, next.Captions[0].Start.Before(page.Captions[1].Start) ||
			(next.Captions[0].Start.Equal(page.Captions[1].Start) && next.Captions[0].ID < page.Captions[1].ID))
	})

	t.Run("BadCursor", func(t *testing.T) {
		s := fresh(t)
		for _, bad := range []string{"!!!", "AAAA", "x"} {
			_, err := s.QueryCaptions(t.Context(), ports.CaptionQuery{Cursor: bad})
			assert.ErrorIs(t, err, ports.ErrBadCaptionCursor, bad)
		}
	})

	t.Run("RetentionDeletesInSmallBatches", func(t *testing.T) {
		s := fresh(t)
		var batch []ports.Caption
		for i := range 10 {
			batch = append(batch, Make(i, "kit", "s1", "row"))
		}
		require.NoError(t, s.SaveCaptions(t.Context(), batch))
		cutoff := base.Add(7 * time.Second) // rows 0..6 are older
		var counts []int
		for {
			n, err := s.DeleteCaptionsBefore(t.Context(), cutoff, 3)
			require.NoError(t, err)
			counts = append(counts, n)
			if n < 3 {
				break
			}
		}
		assert.Equal(t, []int{3, 3, 1}, counts)
		assert.Equal(t, []string{"cap-0000009", "cap-0000008", "cap-0000007"}, queryIDs(t, s, ports.CaptionQuery{}))
		assert.Empty(t, queryIDs(t, s, ports.CaptionQuery{Text: "row", Until: cutoff}), "the search index forgets them too")
	})

	t.Run("ReopenKeepsRowsAndMigrationsAreIdempotent", func(t *testing.T) {
		loc := h.NewLocation(t)
		s, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(1, "kit", "s1", "kept over a restart")}))
		require.NoError(t, s.Close())
		s = open(t, loc)
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, s, ports.CaptionQuery{Text: "restart"}))
	})

	t.Run("TwoOpensAtOnce", func(t *testing.T) {
		loc := h.NewLocation(t)
		stores := make([]ports.CaptionStore, 4)
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for i := range stores {
			wg.Go(func() { stores[i], errs[i] = h.Open(t.Context(), loc) })
		}
		wg.Wait()
		for i, s := range stores {
			if assert.NoError(t, errs[i]) {
				require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{Make(i, "kit", "s1", "raced")}))
				t.Cleanup(func() { assert.NoError(t, s.Close()) })
			}
		}
	})

	t.Run("TwoStoresOnOneDatabaseShareRows", func(t *testing.T) {
		loc := h.NewLocation(t)
		a, b := open(t, loc), open(t, loc)
		require.NoError(t, a.SaveCaptions(t.Context(), []ports.Caption{Make(1, "kit", "s1", "seen by a")}))
		require.NoError(t, b.SaveCaptions(t.Context(), []ports.Caption{Make(2, "kit", "s2", "seen by b")}))
		assert.Equal(t, []string{"cap-0000002", "cap-0000001"}, queryIDs(t, a, ports.CaptionQuery{}))
		assert.Equal(t, []string{"cap-0000002", "cap-0000001"}, queryIDs(t, b, ports.CaptionQuery{}))
		assert.Equal(t, []string{"cap-0000001"}, queryIDs(t, b, ports.CaptionQuery{Text: "seen", StreamID: "s1"}))
	})
}

func queryIDs(t *testing.T, s ports.CaptionReader, q ports.CaptionQuery) []string {
	t.Helper()
	page, err := s.QueryCaptions(t.Context(), q)
	require.NoError(t, err)
	var out []string
	for _, c := range page.Captions {
		out = append(out, c.ID)
	}
	return out
}

// normalize puts captions in the form a store gives them back.
func normalize(cs ...ports.Caption) []ports.Caption {
	out := make([]ports.Caption, len(cs))
	for i, c := range cs {
		c.Start = c.Start.UTC().Truncate(time.Microsecond)
		c.End = c.End.UTC().Truncate(time.Microsecond)
		out[i] = c
	}
	return out
}

func compareCaptions(batch []ports.Caption, a, b string) int {
	find := func(id string) ports.Caption {
		i := slices.IndexFunc(batch, func(c ports.Caption) bool { return c.ID == id })
		return batch[i]
	}
	ca, cb := find(a), find(b)
	if c := ca.Start.Compare(cb.Start); c != 0 {
		return c
	}
	return compareStrings(ca.ID, cb.ID)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
