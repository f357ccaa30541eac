package domaintest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Captions is an in-memory ports.CaptionSource. Its judged marks count
// captions in the order they were added, as a database's insertion order.
type Captions struct {
	mu    sync.Mutex
	byDev map[string][]seqCaption
	seq   int64
	marks map[string]int64
	err   error
}

type seqCaption struct {
	ports.CaptionRef
	seq int64
}

// NewCaptions returns an empty source.
func NewCaptions() *Captions {
	return &Captions{byDev: map[string][]seqCaption{}, marks: map[string]int64{}}
}

// Add stores captions for device; give them in time order (a caption added
// late, with an earlier time, is one stored late).
func (c *Captions) Add(device string, cs ...ports.CaptionRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range cs {
		c.seq++
		x.New = false
		c.byDev[device] = append(c.byDev[device], seqCaption{x, c.seq})
	}
}

// Mark returns the device's judged mark ("" if none).
func (c *Captions) Mark(device string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.marks[device]; ok {
		return strconv.FormatInt(m, 10)
	}
	return ""
}

// MarkJudged implements ports.CaptionSource.
func (c *Captions) MarkJudged(_ context.Context, device, mark string) error {
	n, err := strconv.ParseInt(mark, 10, 64)
	if err != nil {
		return fmt.Errorf("bad mark %q", mark)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.marks[device] = max(c.marks[device], n)
	return nil
}

// Fail makes every later call answer err; nil heals the source.
func (c *Captions) Fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// RecentCaptions implements ports.CaptionSource.
func (c *Captions) RecentCaptions(_ context.Context, device string, since, unjudgedSince time.Time) (ports.CaptionWindow, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return ports.CaptionWindow{}, c.err
	}
	var out ports.CaptionWindow
	mark := c.marks[device]
	for _, cap := range c.byDev[device] {
		ref := cap.CaptionRef
		ref.New = cap.seq > mark
		if !ref.Time.Before(since) || (ref.New && !ref.Time.Before(unjudgedSince)) {
			out.Captions = append(out.Captions, ref)
		}
	}
	slices.SortStableFunc(out.Captions, func(a, b ports.CaptionRef) int { return a.Time.Compare(b.Time) })
	if len(out.Captions) > 0 {
		out.Mark = strconv.FormatInt(c.seq, 10)
	}
	return out, nil
}

// ActiveDevices implements ports.CaptionSource; devices come sorted.
func (c *Captions) ActiveDevices(_ context.Context, since time.Time) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	var out []string
	for dev, cs := range c.byDev {
		if slices.ContainsFunc(cs, func(x seqCaption) bool { return !x.Time.Before(since) }) {
			out = append(out, dev)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DecideFunc answers one evaluation; it must honour ctx.
type DecideFunc func(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error)

// Decider is a scriptable ports.NudgeDecider that records its inputs. With
// Answer nil it says no.
type Decider struct {
	Answer DecideFunc

	mu     sync.Mutex
	inputs []ports.NudgeInput
}

// Decide implements ports.NudgeDecider.
func (d *Decider) Decide(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
	d.mu.Lock()
	d.inputs = append(d.inputs, in)
	d.mu.Unlock()
	if d.Answer == nil {
		return ports.NudgeDecision{Engine: "test"}, nil
	}
	return d.Answer(ctx, in)
}

// Inputs returns what the decider was asked, in order.
func (d *Decider) Inputs() []ports.NudgeInput {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.inputs)
}

// Yes is a DecideFunc that always nudges with message.
func Yes(message string) DecideFunc {
	return func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
		return ports.NudgeDecision{Deliver: true, Message: message, Reasoning: "test says yes", Engine: "test", Model: "test-model", PromptTokens: 10, CompletionTokens: 5}, nil
	}
}

// Interventions is an in-memory ports.InterventionStore. It also keeps
// every delivery update, so tests can check the order of the writes.
type Interventions struct {
	mu      sync.Mutex
	recs    []ports.Intervention // in creation order
	updates map[string][]ports.DeliveryUpdate

	// FailCreate, FailUpdate and FailLast, when set, are asked before each
	// call; a non-nil answer fails it.
	FailCreate func() error
	FailUpdate func(u ports.DeliveryUpdate) error
	FailLast   func() error
}

// NewInterventions returns an empty store.
func NewInterventions() *Interventions {
	return &Interventions{updates: map[string][]ports.DeliveryUpdate{}}
}

// CreateIntervention implements ports.InterventionStore; ids are 1, 2, ….
func (s *Interventions) CreateIntervention(ctx context.Context, rec ports.Intervention) (ports.Intervention, error) {
	if err := ctx.Err(); err != nil {
		return ports.Intervention{}, err // as a database does with a done context
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailCreate != nil {
		if err := s.FailCreate(); err != nil {
			return ports.Intervention{}, err
		}
	}
	rec.ID = strconv.Itoa(len(s.recs) + 1)
	rec.CaptionIDs = slices.Clone(rec.CaptionIDs)
	s.recs = append(s.recs, rec)
	return rec, nil
}

// UpdateDelivery implements ports.InterventionStore.
func (s *Interventions) UpdateDelivery(ctx context.Context, id string, u ports.DeliveryUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.FailUpdate != nil {
		if err := s.FailUpdate(u); err != nil {
			return err
		}
	}
	i := slices.IndexFunc(s.recs, func(r ports.Intervention) bool { return r.ID == id })
	if i < 0 {
		return fmt.Errorf("intervention %q not found", id)
	}
	r := &s.recs[i]
	r.Status, r.DeliveredAt, r.Attempts, r.Error = u.Status, u.DeliveredAt, u.Attempts, u.Error
	s.updates[id] = append(s.updates[id], u)
	return nil
}

// ListInterventions implements ports.InterventionStore. The cursor is the
// id of the last record of the previous page; Limit defaults to 50.
func (s *Interventions) ListInterventions(_ context.Context, q ports.InterventionQuery) (ports.InterventionPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	start := len(s.recs) - 1
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 1 || n > len(s.recs) {
			return ports.InterventionPage{}, fmt.Errorf("bad cursor %q", q.Cursor)
		}
		start = n - 2 // the record before id n
	}
	var page ports.InterventionPage
	for i := start; i >= 0; i-- {
		r := s.recs[i]
		if (q.Device != "" && r.Device != q.Device) || (!q.Since.IsZero() && r.Time.Before(q.Since)) {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = page.Items[len(page.Items)-1].ID
			break
		}
		page.Items = append(page.Items, r)
	}
	return page, nil
}

// LastDelivered implements ports.InterventionStore.
func (s *Interventions) LastDelivered(_ context.Context, device string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailLast != nil {
		if err := s.FailLast(); err != nil {
			return time.Time{}, err
		}
	}
	var last time.Time
	for _, r := range s.recs {
		if r.Device == device && r.Status == ports.DeliveryDelivered && r.DeliveredAt.After(last) {
			last = r.DeliveredAt
		}
	}
	return last, nil
}

// Records returns every record, oldest first.
func (s *Interventions) Records() []ports.Intervention {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

// Updates returns the delivery updates of record id, in order.
func (s *Interventions) Updates(id string) []ports.DeliveryUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates[id])
}

// Notification is one call a Notifier received.
type Notification struct {
	APIKey  string
	Message string
}

// Notifier is a ports.Notifier that records its calls. Fail, when set, is
// asked with the call's number (from 1); a non-nil answer fails the call.
type Notifier struct {
	Fail func(call int) error

	mu    sync.Mutex
	calls []Notification
}

// Notify implements ports.Notifier.
func (n *Notifier) Notify(ctx context.Context, apiKey, message string) (json.RawMessage, error) {
	n.mu.Lock()
	n.calls = append(n.calls, Notification{APIKey: apiKey, Message: message})
	call := len(n.calls)
	n.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n.Fail != nil {
		if err := n.Fail(call); err != nil {
			return nil, err
		}
	}
	return json.RawMessage(`{"ok":true}`), nil
}

// Calls returns the calls received, in order.
func (n *Notifier) Calls() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.calls)
}

// NudgeObserver is a ports.NudgeObserver that counts what it is told.
type NudgeObserver struct {
	mu         sync.Mutex
	decisions  map[string]int // "engine/outcome"
	attempts   map[string]int
	modelCalls int
	tokens     int
}

// Decisions returns the count of decisions for engine and outcome.
func (o *NudgeObserver) Decisions(engine, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.decisions[engine+"/"+outcome]
}

// Attempts returns the count of delivery attempts with outcome.
func (o *NudgeObserver) Attempts(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.attempts[outcome]
}

// ModelCalls returns the decider calls and the tokens they reported.
func (o *NudgeObserver) ModelCalls() (calls, tokens int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.modelCalls, o.tokens
}

func (o *NudgeObserver) NudgeDecided(engine, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.decisions == nil {
		o.decisions = map[string]int{}
	}
	o.decisions[engine+"/"+outcome]++
}

func (o *NudgeObserver) NudgeDeliveryAttempt(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attempts == nil {
		o.attempts = map[string]int{}
	}
	o.attempts[outcome]++
}

func (o *NudgeObserver) NudgeModelCall(_ string, _ time.Duration, promptTokens, completionTokens int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.modelCalls++
	o.tokens += promptTokens + completionTokens
}
