package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of AskConfig.
const (
	// DefaultAskRange is the range asked over when the question gives none.
	DefaultAskRange = 24 * time.Hour
	// DefaultAskCaptions bounds the captions put before the model.
	DefaultAskCaptions = 40
	// DefaultAskContextChars bounds the caption text of one prompt, so the
	// prompt fits a small model's context (about 4 characters a token).
	DefaultAskContextChars = 16000
	// MaxQuestionChars bounds a question, in characters.
	MaxQuestionChars = 2000
	// maxPromptCaptionChars bounds one caption's text in the prompt.
	maxPromptCaptionChars = 1000
	// rrfK is reciprocal rank fusion's constant: 60, as in Cormack et al.
	rrfK = 60
)

// Retrieval names how an answer's captions were found.
const (
	RetrievalText   = "text"
	RetrievalHybrid = "hybrid"
)

// ErrAskRange is wrapped when since is not before until.
var ErrAskRange = errors.New("since must be before until")

// AskObserver counts questions. Implementations must be safe for
// concurrent use.
type AskObserver interface {
	// Asked reports one question: how it was retrieved, its outcome ("ok",
	// "empty", "error", "timeout"), and the time spent retrieving and in
	// the model.
	Asked(retrieval, outcome string, retrievalTime, modelTime time.Duration)
}

// NopAskObserver counts nothing.
type NopAskObserver struct{}

func (NopAskObserver) Asked(string, string, time.Duration, time.Duration) {}

// AskPorts are what answering a question needs.
type AskPorts struct {
	Search ports.CaptionSearcher
	// Recent lists the newest captions of the range, for a question none of
	// whose words match.
	Recent ports.CaptionReader
	Chat   ports.Chat
	// Vectors and Embedder, both set, make retrieval hybrid.
	Vectors  ports.CaptionVectorStore
	Embedder ports.Embedder
}

// AskConfig tunes the asker; zero fields take the defaults.
type AskConfig struct {
	Range        time.Duration
	MaxCaptions  int
	ContextChars int
	Clock        Clock
	Observer     AskObserver
	Logger       *slog.Logger
}

// Asker answers questions about a device's captions from those captions.
type Asker struct {
	p   AskPorts
	cfg AskConfig
}

// NewAsker checks the ports and builds an asker.
func NewAsker(p AskPorts, cfg AskConfig) (*Asker, error) {
	if p.Search == nil || p.Recent == nil || p.Chat == nil {
		return nil, errors.New("ask: needs a caption search, a caption reader and a chat model")
	}
	if (p.Vectors == nil) != (p.Embedder == nil) {
		return nil, errors.New("ask: vectors and embedder go together")
	}
	if cfg.Range <= 0 {
		cfg.Range = DefaultAskRange
	}
	if cfg.MaxCaptions <= 0 {
		cfg.MaxCaptions = DefaultAskCaptions
	}
	cfg.MaxCaptions = min(cfg.MaxCaptions, ports.MaxSearchLimit)
	if cfg.ContextChars <= 0 {
		cfg.ContextChars = DefaultAskContextChars
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Observer == nil {
		cfg.Observer = NopAskObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Asker{p: p, cfg: cfg}, nil
}

// Hybrid reports whether retrieval uses embeddings.
func (a *Asker) Hybrid() bool { return a.p.Embedder != nil }

// AskRequest is one question about one device.
type AskRequest struct {
	Device   string
	Question string
	// Since and Until bound the captions' Start; zero Until is now, zero
	// Since is Until less the asker's range.
	Since time.Time
	Until time.Time
}

// Citation is a caption the answer used, under the number the answer
// gives it ("[3]").
type Citation struct {
	Ref     int
	Caption ports.Caption
}

// AskAnswer is a question's answer.
type AskAnswer struct {
	Text      string
	Citations []Citation
	// Retrieved is how many captions were put before the model; Omitted
	// how many more were found but left out to fit the context.
	Retrieved int
	Omitted   int
	Model     string
	Retrieval string
	Since     time.Time
	Until     time.Time
	Latency   time.Duration
}

// ResolveAskRange applies the defaults: Until now, Since a range before it.
func ResolveAskRange(now, since, until time.Time, span time.Duration) (time.Time, time.Time, error) {
	if until.IsZero() {
		until = now
	}
	if since.IsZero() {
		since = until.Add(-span)
	}
	if !since.Before(until) {
		return since, until, ErrAskRange
	}
	return since.UTC(), until.UTC(), nil
}

// Ask retrieves the device's relevant captions in the range and asks the
// model to answer from them, handing each piece of the answer to onDelta
// (may be nil) as it comes. With nothing in the range the model is not
// called. A model failure wraps ports.ErrChatFailed or ports.ErrChatTimeout.
func (a *Asker) Ask(ctx context.Context, req AskRequest, onDelta func(string)) (AskAnswer, error) {
	began := a.cfg.Clock.Now()
	since, until, err := ResolveAskRange(began, req.Since, req.Until, a.cfg.Range)
	if err != nil {
		return AskAnswer{}, err
	}
	ans := AskAnswer{Since: since, Until: until, Retrieval: RetrievalText}
	found, retrieval, err := a.retrieve(ctx, req.Device, req.Question, since, until)
	if err != nil {
		return AskAnswer{}, err
	}
	ans.Retrieval = retrieval
	retrieved := a.cfg.Clock.Now()
	retrievalTime := retrieved.Sub(began)
	if len(found) == 0 {
		ans.Text = fmt.Sprintf("There are no captions of device %s between %s and %s, so there is nothing to answer from.",
			req.Device, since.Format(time.RFC3339), until.Format(time.RFC3339))
		if onDelta != nil {
			onDelta(ans.Text)
		}
		ans.Latency = retrievalTime
		a.cfg.Observer.Asked(retrieval, "empty", retrievalTime, 0)
		return ans, nil
	}
	prompt := BuildAskPrompt(req.Question, found, a.cfg.MaxCaptions, a.cfg.ContextChars)
	ans.Retrieved, ans.Omitted = len(prompt.Numbered), len(found)-len(prompt.Numbered)
	if ans.Omitted > 0 {
		a.cfg.Logger.Debug("ask: captions left out to fit the context", "device", req.Device,
			"retrieved", ans.Retrieved, "omitted", ans.Omitted)
	}
	reply, err := a.p.Chat.Complete(ctx, prompt.Messages, onDelta)
	modelTime := a.cfg.Clock.Now().Sub(retrieved)
	if err != nil {
		outcome := "error"
		if errors.Is(err, ports.ErrChatTimeout) {
			outcome = "timeout"
		}
		a.cfg.Observer.Asked(retrieval, outcome, retrievalTime, modelTime)
		return AskAnswer{}, fmt.Errorf("ask: %w", err)
	}
	ans.Text, ans.Model = reply.Text, reply.Model
	ans.Citations = CheckCitations(reply.Text, prompt.Numbered, req.Device, since, until)
	ans.Latency = a.cfg.Clock.Now().Sub(began)
	a.cfg.Observer.Asked(retrieval, "ok", retrievalTime, modelTime)
	return ans, nil
}

// retrieve finds the captions to answer from, best first: the text
// search's (fused with the nearest vectors' when embeddings are on), or,
// when that finds nothing, the newest of the range.
func (a *Asker) retrieve(ctx context.Context, device, question string, since, until time.Time) ([]ports.Caption, string, error) {
	limit := a.cfg.MaxCaptions
	var text []ports.Caption
	if words := QuestionWords(question); len(words) > 0 {
		var err error
		text, err = a.p.Search.SearchCaptions(ctx, ports.CaptionSearch{Device: device, Since: since, Until: until, Words: words, Limit: limit})
		if err != nil {
			return nil, "", fmt.Errorf("ask: text search: %w", err)
		}
	}
	retrieval, found := RetrievalText, text
	if a.p.Embedder != nil {
		near, err := a.nearest(ctx, device, question, since, until, limit)
		if err != nil {
			// Words still answer: say so in the response rather than fail.
			a.cfg.Logger.Warn("ask: vector search failed, answering from text search", "device", device, "err", err)
		} else {
			retrieval, found = RetrievalHybrid, FuseRanks(limit, text, near)
		}
	}
	if len(found) > 0 {
		return found, retrieval, nil
	}
	page, err := a.p.Recent.QueryCaptions(ctx, ports.CaptionQuery{Device: device, Since: since, Until: until, Limit: limit})
	if err != nil {
		return nil, "", fmt.Errorf("ask: recent captions: %w", err)
	}
	return page.Captions, retrieval, nil
}

func (a *Asker) nearest(ctx context.Context, device, question string, since, until time.Time, limit int) ([]ports.Caption, error) {
	vecs, err := a.p.Embedder.Embed(ctx, []string{question})
	if err != nil {
		return nil, fmt.Errorf("embed the question: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("embed the question: %d vectors for 1 text", len(vecs))
	}
	near, err := a.p.Vectors.NearestCaptions(ctx, ports.VectorSearch{Device: device, Since: since, Until: until,
		Model: a.p.Embedder.Model(), Vector: vecs[0], Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("nearest captions: %w", err)
	}
	return near, nil
}

// FuseRanks merges ranked lists by reciprocal rank fusion: each caption
// scores the sum of 1/(k+rank) over the lists it is in; the best limit
// are returned, ties in first-seen order.
func FuseRanks(limit int, lists ...[]ports.Caption) []ports.Caption {
	type entry struct {
		c     ports.Caption
		score float64
		first int
	}
	byID := map[string]*entry{}
	var order []*entry
	for _, list := range lists {
		for rank, c := range list {
			e, ok := byID[c.ID]
			if !ok {
				e = &entry{c: c, first: len(order)}
				byID[c.ID] = e
				order = append(order, e)
			}
			e.score += 1 / float64(rrfK+rank+1)
		}
	}
	slices.SortStableFunc(order, func(x, y *entry) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return x.first - y.first
	})
	out := make([]ports.Caption, 0, min(limit, len(order)))
	for _, e := range order[:min(limit, len(order))] {
		out = append(out, e.c)
	}
	return out
}

// AskPrompt is the prompt of one question.
type AskPrompt struct {
	Messages []ports.ChatMessage
	// Numbered are the captions shown to the model: Numbered[i] is "[i+1]".
	Numbered []ports.Caption
}

// AskSystemPrompt tells the model to answer from the numbered captions
// only and to cite them.
const AskSystemPrompt = `You answer questions a wearer of smart glasses asks about their day. Below the question are captions of what their camera saw, one a line: a number in brackets, the time (UTC) and the caption.
Answer from these captions only. If they do not hold the answer, say so plainly; never guess beyond them.
After each statement, cite the captions it rests on by their numbers in brackets, such as [2] or [3][7]. Cite only numbers from the list. Be brief: a few sentences at most.`

// BuildAskPrompt puts the best captions (found, best first) that fit
// maxCaptions and contextChars before the model, in time order, numbered.
func BuildAskPrompt(question string, found []ports.Caption, maxCaptions, contextChars int) AskPrompt {
	var kept []ports.Caption
	used := 0
	for _, c := range found {
		if len(kept) == maxCaptions {
			break
		}
		n := min(utf8.RuneCountInString(c.Text), maxPromptCaptionChars) + 40 // the number and times
		if used+n > contextChars && len(kept) > 0 {
			continue // a shorter caption further down may still fit
		}
		used += n
		kept = append(kept, c)
	}
	slices.SortStableFunc(kept, func(x, y ports.Caption) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	var b strings.Builder
	b.WriteString("Question: ")
	b.WriteString(question)
	b.WriteString("\n\nCaptions:\n")
	for i, c := range kept {
		text := strings.Join(strings.Fields(c.Text), " ") // one line each
		if utf8.RuneCountInString(text) > maxPromptCaptionChars {
			text = string([]rune(text)[:maxPromptCaptionChars]) + "…"
		}
		fmt.Fprintf(&b, "[%d] %s–%s %s\n", i+1, c.Start.UTC().Format("2006-01-02 15:04:05"),
			c.End.UTC().Format("15:04:05"), text)
	}
	return AskPrompt{
		Messages: []ports.ChatMessage{{Role: "system", Content: AskSystemPrompt}, {Role: "user", Content: b.String()}},
		Numbered: kept,
	}
}

// CheckCitations reads the bracketed numbers of answer ("[3]", "[3, 5]")
// and returns the captions they name, in order of first mention. A number
// not in the list, or a caption not of device or outside [since, until),
// is dropped: the model may invent, the answer may not.
func CheckCitations(answer string, numbered []ports.Caption, device string, since, until time.Time) []Citation {
	var out []Citation
	seen := map[int]bool{}
	for _, ref := range bracketRefs(answer) {
		if ref < 1 || ref > len(numbered) || seen[ref] {
			continue
		}
		seen[ref] = true
		c := numbered[ref-1]
		if c.Device != device || c.Start.Before(since) || !c.Start.Before(until) {
			continue
		}
		out = append(out, Citation{Ref: ref, Caption: c})
	}
	return out
}

// bracketRefs returns the numbers inside square brackets, in order:
// "[2]", "[2, 5]" and "[2][5]" all count.
func bracketRefs(s string) []int {
	var refs []int
	for {
		open := strings.IndexByte(s, '[')
		if open < 0 {
			return refs
		}
		s = s[open+1:]
		end := strings.IndexByte(s, ']')
		if end < 0 || end > 64 {
			continue
		}
		for _, part := range strings.FieldsFunc(s[:end], func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
			if n, err := strconv.Atoi(part); err == nil {
				refs = append(refs, n)
			}
		}
		s = s[end+1:]
	}
}

// stopWords are left out of a question's search words: they match nearly
// every caption and say nothing of what is asked.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a about after again all am an and any are as at be been before being
		between both but by can could did do does doing done down during each few for from had has have having
		he her here hers him his how i if in into is it its itself just me more most my myself no nor not now
		of off on once only or other our ours out over own same she should so some such than that the their
		theirs them then there these they this those through to too under until up very was we were what when
		where which while who whom why will with would you your yours today yesterday tell show please ever
		did get got go went see saw seen`) {
		stopWords[w] = true
	}
}

// QuestionWords are the words of a question worth searching for: lower
// case, stop words dropped, each once, at most ports.MaxSearchWords.
func QuestionWords(question string) []string {
	var words []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(question), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopWords[w] || seen[w] || utf8.RuneCountInString(w) > 64 {
			continue
		}
		seen[w] = true
		words = append(words, w)
		if len(words) == ports.MaxSearchWords {
			break
		}
	}
	return words
}
