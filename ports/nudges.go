package ports

import (
	"context"
	"time"
)

// CaptionRef is one caption as the nudge loop sees it.
type CaptionRef struct {
	// ID identifies the caption in its store; the loop records which
	// captions each decision saw.
	ID string
	// Time is when the caption's chunk ended (or was stored).
	Time time.Time
	Text string
	// New: no earlier decision judged this caption (it is not covered by
	// the device's judged mark). Only new captions may make a decision
	// fire; the others are context.
	New bool
}

// CaptionWindow is what one evaluation of a device reads.
type CaptionWindow struct {
	// Captions are oldest first.
	Captions []CaptionRef
	// Mark covers every caption of Captions (and every caption stored
	// before them): handed to MarkJudged once the decision is recorded, it
	// makes none of them New again. It is opaque to the loop; empty when
	// Captions is.
	Mark string
}

// HasNew reports whether any caption of w is New.
func (w CaptionWindow) HasNew() bool {
	for _, c := range w.Captions {
		if c.New {
			return true
		}
	}
	return false
}

// CaptionSource reads the captions the nudge loop decides on. It is small on
// purpose, so a caption store can implement it beside its own interface.
type CaptionSource interface {
	// RecentCaptions returns what one evaluation of device sees: its
	// captions with Time at or after since (the window), and those with
	// Time at or after unjudgedSince (earlier: a caption that reached the
	// store late) that no mark given to MarkJudged covers, with New set on
	// every caption no mark covers; oldest first, at most the newest
	// MaxRecentCaptions. A store decides what "covered" means by its own
	// insertion order, not by caption time, so a caption stored late is
	// New exactly until a mark taken after it was stored is recorded.
	RecentCaptions(ctx context.Context, device string, since, unjudgedSince time.Time) (CaptionWindow, error)
	// MarkJudged records mark (from a CaptionWindow of this device) as the
	// device's judged mark: what it covers is never New again, in this
	// process or any other sharing the store, across restarts.
	MarkJudged(ctx context.Context, device, mark string) error
	// ActiveDevices returns the devices with at least one caption at or
	// after since.
	ActiveDevices(ctx context.Context, since time.Time) ([]string, error)
}

// NudgeInput is what a decider is asked about: one device's window.
type NudgeInput struct {
	Device string
	// Now is the evaluation time; the window ends here.
	Now time.Time
	// Captions are the window's captions, oldest first. At least one
	// caption or biometric window is New (the decision may only act on new
	// evidence; the rest is context); Captions may be empty when the
	// wearer's body data still arrives but their captions stopped.
	Captions []CaptionRef
	// Biometrics are the window's biometric windows, oldest first; empty
	// when the loop has no biometric source or the device sent none.
	Biometrics []BiometricRef
	// LastDelivered is when the device last received a nudge; zero if never.
	LastDelivered time.Time
}

// NudgeDecision is a decider's answer.
type NudgeDecision struct {
	// Deliver says whether to nudge now; Message is the nudge then.
	Deliver   bool
	Reasoning string
	Message   string
	// Engine names the decider ("rules", "llm"); Model the model or rule
	// that decided, when there is one.
	Engine string
	Model  string
	// Token counts of the model call, zero when no model was asked.
	PromptTokens     int
	CompletionTokens int
}

// NudgeDecider decides whether, and with what message, to nudge a device.
type NudgeDecider interface {
	// Decide must honour ctx. An error means "no decision": the loop
	// records it and delivers nothing.
	Decide(ctx context.Context, in NudgeInput) (NudgeDecision, error)
}

// Verdict is the decision part of an intervention record.
type Verdict string

const (
	VerdictYes   Verdict = "yes"
	VerdictNo    Verdict = "no"
	VerdictError Verdict = "error"
)

// DeliveryStatus is where a recorded decision stands on its way to the phone.
type DeliveryStatus string

const (
	// DeliveryNone: the decider said no, or failed; nothing to deliver.
	DeliveryNone DeliveryStatus = "none"
	// DeliverySuppressedCooldown: the decider said yes within the cooldown.
	DeliverySuppressedCooldown DeliveryStatus = "suppressed: cooldown"
	// DeliverySkippedNoKey: the decider said yes but the server has no key.
	DeliverySkippedNoKey DeliveryStatus = "skipped: no key"
	// DeliveryPending: to be sent; a previous attempt, if any, failed.
	DeliveryPending DeliveryStatus = "pending"
	// DeliverySending: an attempt is under way. A record found in this
	// state after a crash is never resent, so a nudge is sent at most once.
	DeliverySending   DeliveryStatus = "sending"
	DeliveryDelivered DeliveryStatus = "delivered"
	// DeliveryFailed: every attempt within the interval failed.
	DeliveryFailed DeliveryStatus = "failed"
)

// Intervention is the audit record of one decision.
type Intervention struct {
	// ID is assigned by the store.
	ID     string
	Device string
	// Time is when the decision was made.
	Time       time.Time
	Engine     string
	Verdict    Verdict
	Reasoning  string
	CaptionIDs []string
	// BiometricIDs are the ids of the biometric windows the decision saw.
	BiometricIDs     []string
	Model            string
	PromptTokens     int
	CompletionTokens int
	// Nudge is the decider's message, without the delivery prefix.
	Nudge       string
	Status      DeliveryStatus
	DeliveredAt time.Time
	Attempts    int
	// Error is the decider's or the last delivery attempt's error text.
	Error string
}

// DeliveryUpdate changes the delivery part of a stored intervention.
type DeliveryUpdate struct {
	Status      DeliveryStatus
	DeliveredAt time.Time
	Attempts    int
	Error       string
}

// InterventionQuery selects stored interventions, newest first.
type InterventionQuery struct {
	// Device, when set, keeps only that device's records.
	Device string
	// Devices, when non-nil, keeps only these devices' records (with Device
	// too, both must hold); an empty non-nil set matches nothing.
	Devices []string
	// Since, when set, keeps records with Time at or after it.
	Since time.Time
	// Limit bounds the page; the store applies its own default and maximum.
	Limit int
	// Cursor continues from a previous page's NextCursor.
	Cursor string
}

// InterventionPage is one page of records.
type InterventionPage struct {
	Items []Intervention
	// NextCursor is empty on the last page.
	NextCursor string
}

// InterventionStore keeps the audit trail of the nudge loop.
type InterventionStore interface {
	// CreateIntervention stores rec and returns it with its ID set.
	CreateIntervention(ctx context.Context, rec Intervention) (Intervention, error)
	// UpdateDelivery changes the delivery fields of the record id.
	UpdateDelivery(ctx context.Context, id string, u DeliveryUpdate) error
	// ListInterventions returns records newest first.
	ListInterventions(ctx context.Context, q InterventionQuery) (InterventionPage, error)
	// LastDelivered returns when the device last got a nudge; zero if never.
	LastDelivered(ctx context.Context, device string) (time.Time, error)
}

// EvaluationLock makes one evaluation per device per interval exclusive,
// across every instance sharing the same lock (in one process, or one
// database).
type EvaluationLock interface {
	// TryAcquire claims the evaluation of device for the interval that
	// starts at slot. ok is false, with a nil error, when another
	// evaluation of the device is running, or when an evaluation for this
	// slot or a later one has already been claimed. A zero slot (a manual
	// run) only excludes: it claims no interval. On ok, release must be
	// called once the evaluation (delivery included) has finished.
	TryAcquire(ctx context.Context, device string, slot time.Time) (release func(), ok bool, err error)
}

// NudgeObserver is told what the nudge loop does, for metrics. Methods must
// be cheap, non-blocking and safe for concurrent use.
type NudgeObserver interface {
	// NudgeDecided reports one recorded decision. outcome is the record's
	// final state: "no", "error", "delivered", "failed",
	// "suppressed_cooldown" or "skipped_no_key".
	NudgeDecided(engine, outcome string)
	// NudgeDeliveryAttempt reports one call to the notifier: "ok" or "error".
	NudgeDeliveryAttempt(outcome string)
	// NudgeModelCall reports one decider call: its latency and tokens.
	NudgeModelCall(engine string, d time.Duration, promptTokens, completionTokens int)
}

// NopNudgeObserver is a NudgeObserver that ignores everything.
type NopNudgeObserver struct{}

func (NopNudgeObserver) NudgeDecided(string, string)                    {}
func (NopNudgeObserver) NudgeDeliveryAttempt(string)                    {}
func (NopNudgeObserver) NudgeModelCall(string, time.Duration, int, int) {}
