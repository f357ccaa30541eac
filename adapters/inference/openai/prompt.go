package openai

import (
	"strconv"
	"strings"
)

// The Gemma app's fixed prompt lines (vlm_logic.INSTRUCTION and
// HISTORY_HEADER), kept word for word so captions read alike on every backend.
const (
	instruction   = "Use only what is visible in these frames. Answer with exactly one concise present-tense sentence."
	historyHeader = "Recent prior observations (may be stale):"
)

// buildPrompt is vlm_logic.build_prompt: the chunk window, then (only with
// history) the header and one "- " bullet per entry, then the instruction,
// then "Task: <task>", one per line.
func buildPrompt(startS, endS float64, history []string, task string) string {
	var b strings.Builder
	b.WriteString("Chunk time window: ")
	b.WriteString(formatSeconds(startS))
	b.WriteString("s to ")
	b.WriteString(formatSeconds(endS))
	b.WriteString("s.\n")
	if len(history) > 0 {
		b.WriteString(historyHeader)
		b.WriteByte('\n')
		for _, entry := range history {
			b.WriteString("- ")
			b.WriteString(entry)
			b.WriteByte('\n')
		}
	}
	b.WriteString(instruction)
	b.WriteString("\nTask: ")
	b.WriteString(task)
	return b.String()
}

// formatSeconds is Python's f"{s:.1f}" (both round the exact binary value).
func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) }

// historyEntry is vlm_logic.format_history_entry: "S.S-E.Es: <caption>".
func historyEntry(startS, endS float64, caption string) string {
	return formatSeconds(startS) + "-" + formatSeconds(endS) + "s: " + caption
}

// collapseWhitespace turns every run of whitespace into one space and trims.
func collapseWhitespace(s string) string { return strings.Join(strings.Fields(s), " ") }

// resolveTask is vlm_logic.resolve_task: the chunk's prompt, trimmed, or the
// default when it is blank.
func resolveTask(prompt, fallback string) string {
	if p := strings.TrimSpace(prompt); p != "" {
		return p
	}
	return fallback
}

// captionHistory is one stream's last captions as history entries, oldest
// first, never more than max.
type captionHistory struct {
	max     int
	entries []string
}

// add records a caption; an empty caption is not history.
func (h *captionHistory) add(startS, endS float64, caption string) {
	if h.max <= 0 || caption == "" {
		return
	}
	if len(h.entries) == h.max {
		copy(h.entries, h.entries[1:])
		h.entries = h.entries[:h.max-1]
	}
	h.entries = append(h.entries, historyEntry(startS, endS, caption))
}
