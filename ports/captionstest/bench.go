package captionstest

import (
	"context"
	"flag"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// SeededRows is how many captions BenchmarkSearch seeds.
const SeededRows = 1_000_000

// NamedExplicitly reports whether the -test.bench pattern names name, so a
// benchmark that seeds for minutes runs only when asked for by name and not
// under a blanket -bench=. .
func NamedExplicitly(name string) bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), name)
}

// BenchSave measures SaveCaptions with batches of batchSize new captions.
func BenchSave(b *testing.B, s ports.CaptionWriter, batchSize int) {
	next := 0
	batch := make([]ports.Caption, batchSize)
	b.ResetTimer()
	for b.Loop() {
		for j := range batch {
			batch[j] = Synthetic(next)
			next++
		}
		if err := s.SaveCaptions(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "rows/s")
}

// Seed writes Synthetic(0..n-1) in batches and reports how long it took.
func Seed(b *testing.B, s ports.CaptionWriter, n int) time.Duration {
	start := time.Now()
	const batchSize = 5000
	batch := make([]ports.Caption, 0, batchSize)
	for i := range n {
		batch = append(batch, Synthetic(i))
		if len(batch) == batchSize || i == n-1 {
			if err := s.SaveCaptions(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return time.Since(start)
}

// BenchQueries runs the search benchmarks over a store holding Synthetic(0..SeededRows-1).
func BenchQueries(b *testing.B, s ports.CaptionReader) {
	newest, err := s.QueryCaptions(context.Background(), ports.CaptionQuery{Limit: 50})
	if err != nil || newest.NextCursor == "" {
		b.Fatalf("seeded store answers no page: %v", err)
	}
	deep, err := s.QueryCaptions(context.Background(), ports.CaptionQuery{Limit: 1, Until: base.Add(SeededRows / SyntheticDevices)})
	if err != nil || len(deep.Captions) == 0 {
		b.Fatalf("seeded store answers no deep page: %v", err)
	}
	queries := []struct {
		name string
		q    ports.CaptionQuery
	}{
		{"newest50", ports.CaptionQuery{Limit: 50}},
		{"device50", ports.CaptionQuery{Device: "glasses-042", Limit: 50}},
		{"device_since_until", ports.CaptionQuery{Device: "glasses-042", Since: base.Add(2 * time.Hour), Until: base.Add(3 * time.Hour), Limit: 50}},
		{"next_page", ports.CaptionQuery{Limit: 50, Cursor: newest.NextCursor}},
		{"q_common_coffee", ports.CaptionQuery{Text: "coffee", Limit: 50}},
		{"q_rare_zeppelin", ports.CaptionQuery{Text: "zeppelin", Limit: 50}},
		{"q_two_words", ports.CaptionQuery{Text: "coffee table", Limit: 50}},
		{"q_device_coffee", ports.CaptionQuery{Text: "coffee", Device: "glasses-042", Limit: 50}},
		{"q_absent_word", ports.CaptionQuery{Text: "walrus", Limit: 50}},
	}
	for _, tc := range queries {
		b.Run(tc.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				page, err := s.QueryCaptions(context.Background(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(page.Captions)
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}

// CommonWord is the word SyntheticCommon puts in nine captions of ten.
const CommonWord = "wearer"

// SyntheticCommon is Synthetic(i) with CommonWord in every caption but
// each tenth, which holds none: a corpus where one word is nearly
// everywhere, as "wearer" is in a wearer's month of captions.
func SyntheticCommon(i int) ports.Caption {
	c := Synthetic(i)
	words := strings.Fields(c.Text)
	for j, w := range words {
		if w == CommonWord {
			words[j] = "person"
		}
	}
	if i%10 != 0 {
		words[i%len(words)] = CommonWord
	}
	c.Text = strings.Join(words, " ")
	return c
}

// SeedWith writes caption(0..n-1) in batches of 5,000 and reports how long
// it took.
func SeedWith(b *testing.B, s ports.CaptionWriter, n int, caption func(int) ports.Caption) time.Duration {
	start := time.Now()
	const batchSize = 5000
	batch := make([]ports.Caption, 0, batchSize)
	for i := range n {
		batch = append(batch, caption(i))
		if len(batch) == batchSize || i == n-1 {
			if err := s.SaveCaptions(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return time.Since(start)
}

// BenchCommonWord measures, over a store seeded with SyntheticCommon, a
// q=CommonWord page alone and a plain newest-50 listing while four
// searches run at once, reporting p50 and p95 latencies.
func BenchCommonWord(b *testing.B, s ports.CaptionReader) {
	search := ports.CaptionQuery{Text: CommonWord, Limit: 50}
	measure := func(b *testing.B, q ports.CaptionQuery) {
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			page, err := s.QueryCaptions(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			if len(page.Captions) == 0 {
				b.Fatal("empty page")
			}
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
	}
	b.Run("q_"+CommonWord, func(b *testing.B) { measure(b, search) })
	b.Run("q_"+CommonWord+"_device", func(b *testing.B) {
		measure(b, ports.CaptionQuery{Text: CommonWord, Device: "glasses-042", Limit: 50})
	})
	b.Run("q_"+CommonWord+"_page_20", func(b *testing.B) { // twenty pages deep
		q := search
		for range 20 {
			page, err := s.QueryCaptions(context.Background(), q)
			if err != nil || page.NextCursor == "" {
				b.Fatalf("page: %v", err)
			}
			q.Cursor = page.NextCursor
		}
		measure(b, q)
	})
	b.Run("newest50_beside_4_searches", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var searches atomic.Int64
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, err := s.QueryCaptions(ctx, search); err == nil {
						searches.Add(1)
					}
				}
			})
		}
		measure(b, ports.CaptionQuery{Limit: 50})
		cancel()
		wg.Wait()
		b.ReportMetric(float64(searches.Load())/b.Elapsed().Seconds(), "searches/s")
	})
}
