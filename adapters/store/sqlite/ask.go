package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/foresight-vision/foresight/ports"
)

var _ ports.CaptionSearcher = (*Store)(nil)

// askCaptionColumns are read by scanCaptions, in its order.
const askCaptionColumns = `c.id, c.device, c.stream_id, c.start_us, c.end_us, c.chunk_start_s, c.chunk_end_s, c.caption, c.latency_ms, c.tokens, c.backend, c.model`

// SearchCaptions implements ports.CaptionSearcher: FTS5's bm25 ranking of
// captions holding any of the words, the newest first among equals.
func (s *Store) SearchCaptions(ctx context.Context, q ports.CaptionSearch) ([]ports.Caption, error) {
	match := anyWordExpression(q.Words)
	if match == "" {
		return nil, nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+askCaptionColumns+`
		FROM captions_fts f JOIN captions c ON c.seq = f.rowid
		WHERE captions_fts MATCH ? AND c.device = ? AND c.start_us >= ? AND c.start_us < ?
		ORDER BY bm25(captions_fts), c.start_us DESC, c.id DESC LIMIT ?`,
		match, q.Device, q.Since.UnixMicro(), q.Until.UnixMicro(), searchLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("search captions: %w", err)
	}
	return scanCaptions(rows)
}

// anyWordExpression is an FTS5 query matching any of words, each quoted
// so none can be a syntax error.
func anyWordExpression(words []string) string {
	var quoted []string
	for _, w := range words[:min(len(words), ports.MaxSearchWords)] {
		for _, part := range strings.FieldsFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			quoted = append(quoted, `"`+part+`"`)
		}
	}
	return strings.Join(quoted, " OR ")
}

func searchLimit(n int) int { return min(max(n, 1), ports.MaxSearchLimit) }

// scanCaptions reads rows of askCaptionColumns and closes them.
func scanCaptions(rows *sql.Rows) ([]ports.Caption, error) {
	defer func() { _ = rows.Close() }()
	var out []ports.Caption
	for rows.Next() {
		var c ports.Caption
		var startUS, endUS int64
		if err := rows.Scan(&c.ID, &c.Device, &c.StreamID, &startUS, &endUS, &c.ChunkStartS, &c.ChunkEndS,
			&c.Text, &c.LatencyMS, &c.Tokens, &c.Backend, &c.Model); err != nil {
			return nil, fmt.Errorf("read caption row: %w", err)
		}
		c.Start, c.End = time.UnixMicro(startUS).UTC(), time.UnixMicro(endUS).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read captions: %w", err)
	}
	return out, nil
}
