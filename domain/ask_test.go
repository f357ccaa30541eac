package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

var askBase = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)

func askCap(id, device string, minute int, text string) ports.Caption {
	start := askBase.Add(time.Duration(minute) * time.Minute)
	return ports.Caption{ID: id, Device: device, Start: start, End: start.Add(2 * time.Second), Text: text}
}

func TestResolveAskRangeDefaultsToTheLastDay(t *testing.T) {
	since, until, err := domain.ResolveAskRange(askBase, time.Time{}, time.Time{}, domain.DefaultAskRange)
	assert.NoError(t, err)
	assert.Equal(t, askBase.Add(-24*time.Hour), since)
	assert.Equal(t, askBase, until)
	_, _, err = domain.ResolveAskRange(askBase, askBase.Add(time.Hour), time.Time{}, domain.DefaultAskRange)
	assert.ErrorIs(t, err, domain.ErrAskRange)
}

func TestCheckCitationsDropsWhatTheModelInvents(t *testing.T) {
	numbered := []ports.Caption{askCap("a", "kit", 0, "one"), askCap("b", "other", 1, "two"), askCap("c", "kit", 120, "late"), askCap("d", "kit", 2, "four")}
	got := domain.CheckCitations("See [4] and [1, 2]; also [3], [9], [0], [x] and [4] again.", numbered, "kit", askBase, askBase.Add(time.Hour))
	var ids []string
	var refs []int
	for _, c := range got {
		ids, refs = append(ids, c.Caption.ID), append(refs, c.Ref)
	}
	assert.Equal(t, []string{"d", "a"}, ids, "first mention order; other device, out of range and unknown numbers dropped")
	assert.Equal(t, []int{4, 1}, refs)
}

func TestFuseRanksFavoursWhatBothListsFind(t *testing.T) {
	a, b, c, d := askCap("a", "kit", 0, ""), askCap("b", "kit", 1, ""), askCap("c", "kit", 2, ""), askCap("d", "kit", 3, "")
	got := domain.FuseRanks(3, []ports.Caption{a, b, c}, []ports.Caption{d, c, b})
	var ids []string
	for _, x := range got {
		ids = append(ids, x.ID)
	}
	assert.Equal(t, []string{"b", "c", "a"}, ids)
}

func TestQuestionWordsDropStopWords(t *testing.T) {
	assert.Equal(t, []string{"leave", "keys"}, domain.QuestionWords("Where did I leave my KEYS? keys!"))
	assert.Empty(t, domain.QuestionWords("what did I do today?"))
	assert.Len(t, domain.QuestionWords(strings.Repeat("w ", 1)+"a1 a2 a3 a4 a5 a6 a7 a8 a9 b1 b2 b3 b4 b5 b6 b7 b8 b9"), ports.MaxSearchWords)
}

func TestBuildAskPromptKeepsTheBestThatFitInTimeOrder(t *testing.T) {
	found := []ports.Caption{askCap("late", "kit", 30, "late and best"), askCap("huge", "kit", 10, strings.Repeat("x", 900)),
		askCap("early", "kit", 0, "early, third")}
	p := domain.BuildAskPrompt("q?", found, 10, 200)
	var ids []string
	for _, c := range p.Numbered {
		ids = append(ids, c.ID)
	}
	assert.Equal(t, []string{"early", "late"}, ids, "the caption past the budget is left out; the rest in time order")
	assert.Contains(t, p.Messages[1].Content, "[1] 2026-05-01 09:00:00–09:00:02 early, third")
	assert.Contains(t, p.Messages[1].Content, "[2] 2026-05-01 09:30:00–09:30:02 late and best")
	assert.Len(t, domain.BuildAskPrompt("q?", found, 1, 10000).Numbered, 1)
}
