package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/foresight-vision/foresight/ports"
)

var _ ports.CaptionSearcher = (*Store)(nil)

// askCaptionColumns are read by scanCaptions, in its order.
const askCaptionColumns = `id, device, stream_id, start_at, end_at, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model`

// SearchCaptions implements ports.CaptionSearcher: ts_rank of captions
// holding any of the words, the newest first among equals.
func (s *Store) SearchCaptions(ctx context.Context, q ports.CaptionSearch) ([]ports.Caption, error) {
	query := anyWordQuery(q.Words)
	if query == "" {
		return nil, nil
	}
	// The matches are materialized first so the planner takes them from the
	// GIN index rather than walking the device's captions (see QueryCaptions).
	rows, err := s.pool.Query(ctx, `WITH matches AS MATERIALIZED (
			SELECT `+askCaptionColumns+`, ts_rank(search, query) AS rank
			FROM captions, to_tsquery('`+SearchConfig+`', $1) AS query
			WHERE search @@ query AND device = $2 AND start_at >= $3 AND start_at < $4)
		SELECT `+askCaptionColumns+` FROM matches ORDER BY rank DESC, start_at DESC, id DESC LIMIT $5`,
		query, q.Device, q.Since.UTC(), q.Until.UTC(), searchLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("search captions: %w", err)
	}
	return scanCaptions(rows)
}

// anyWordQuery is a tsquery matching any of words: only letters and
// digits reach it, so it cannot be a syntax error.
func anyWordQuery(words []string) string {
	var parts []string
	for _, w := range words[:min(len(words), ports.MaxSearchWords)] {
		parts = append(parts, strings.FieldsFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })...)
	}
	return strings.Join(parts, " | ")
}

func searchLimit(n int) int { return min(max(n, 1), ports.MaxSearchLimit) }

// scanCaptions reads rows of askCaptionColumns and closes them.
func scanCaptions(rows pgx.Rows) ([]ports.Caption, error) {
	defer rows.Close()
	var out []ports.Caption
	for rows.Next() {
		var c ports.Caption
		if err := rows.Scan(&c.ID, &c.Device, &c.StreamID, &c.Start, &c.End, &c.ChunkStartS, &c.ChunkEndS,
			&c.Text, &c.LatencyMS, &c.Tokens, &c.Backend, &c.Model); err != nil {
			return nil, fmt.Errorf("read caption row: %w", err)
		}
		c.Start, c.End = c.Start.UTC(), c.End.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read captions: %w", err)
	}
	return out, nil
}
