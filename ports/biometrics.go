package ports

import (
	"context"
	"encoding/json"
	"time"
)

// BiometricWindow is one sync window of the wearer app's wrist sensor: the
// features the phone computed over it and, optionally, its risk prediction.
// Stores keep times at microsecond precision in UTC.
type BiometricWindow struct {
	Device string
	// WindowID is the app's id of the window, unique per device: a window
	// whose (Device, WindowID) is already stored is skipped.
	WindowID string
	// Start is when the window began; Duration its length (zero when the
	// app sent none).
	Start    time.Time
	Duration time.Duration
	// Features holds every numeric field of the upload under its wire name
	// (hrMean, movementIntensity, qualityScore, … and any later field the
	// app adds), nil for a field sent as null.
	Features map[string]*float64
	// AlertLevel and Susceptibility are the risk prediction's alertLevel
	// and overallSusceptibility; "" and nil without one.
	AlertLevel     string
	Susceptibility *float64
	// Risk is the riskPrediction object as sent; nil when absent or null.
	Risk json.RawMessage
	// StoredAt is when the server first received the window: a repeated
	// upload is answered with it.
	StoredAt time.Time
}

// End is when the window ended: the time the nudge loop sees it at.
func (w BiometricWindow) End() time.Time { return w.Start.Add(w.Duration) }

// Feature returns the named feature and whether it holds a number.
func (w BiometricWindow) Feature(name string) (float64, bool) {
	if v := w.Features[name]; v != nil {
		return *v, true
	}
	return 0, false
}

// BiometricQuery selects biometric windows, newest (Start) first. Zero
// fields do not filter; Limit and Cursor work as in CaptionQuery.
type BiometricQuery struct {
	Device string
	// Since is inclusive and Until exclusive; both compare with Start.
	Since  time.Time
	Until  time.Time
	Limit  int
	Cursor string
}

// EffectiveLimit is q.Limit clamped the way stores apply it (the caption
// bounds).
func (q BiometricQuery) EffectiveLimit() int {
	return CaptionQuery{Limit: q.Limit}.EffectiveLimit()
}

// BiometricPage is one page of a query.
type BiometricPage struct {
	Windows []BiometricWindow
	// NextCursor continues after the last window; empty when there is no more.
	NextCursor string
}

// BiometricWriter saves biometric windows.
type BiometricWriter interface {
	// SaveBiometrics stores a batch in one transaction: all or none. A
	// window whose (Device, WindowID) is already stored is skipped, the
	// first one kept, so retrying a batch is safe.
	SaveBiometrics(ctx context.Context, windows []BiometricWindow) error
}

// BiometricStore is everything a database offers for biometric windows.
type BiometricStore interface {
	BiometricWriter
	// BiometricStoredAt returns when the device's window was first
	// received; ok is false when it is not stored.
	BiometricStoredAt(ctx context.Context, device, windowID string) (storedAt time.Time, ok bool, err error)
	// QueryBiometrics returns one page, newest first. A bad Cursor answers
	// an error wrapping ErrBadCaptionCursor.
	QueryBiometrics(ctx context.Context, q BiometricQuery) (BiometricPage, error)
	// DeleteBiometricsBefore deletes at most limit windows whose Start is
	// before t, for retention (as CaptionPruner).
	DeleteBiometricsBefore(ctx context.Context, t time.Time, limit int) (int, error)
	// DeleteDeviceBiometrics deletes the device's windows whose Start is in
	// [since, until), at most limit, as DeviceMemoryEraser.
	DeleteDeviceBiometrics(ctx context.Context, device string, since, until time.Time, limit int) (int, error)
}

// BiometricRef is one biometric window as the nudge loop sees it.
type BiometricRef struct {
	// ID is the window id; decisions record the ids they saw.
	ID string
	// Time is when the window ended.
	Time time.Time
	// Features are the window's numeric fields (null ones left out).
	Features map[string]float64
	// AlertLevel is the risk prediction's, "" without one.
	AlertLevel string
	// New: no earlier decision judged this window (see CaptionRef.New).
	New bool
}

// BiometricSet is what one evaluation of a device reads of its body.
type BiometricSet struct {
	// Windows are oldest first.
	Windows []BiometricRef
	// Mark covers every window of Windows, as CaptionWindow.Mark; empty
	// when Windows is.
	Mark string
}

// HasNew reports whether any window of s is New.
func (s BiometricSet) HasNew() bool {
	for _, w := range s.Windows {
		if w.New {
			return true
		}
	}
	return false
}

// MaxRecentBiometrics bounds the windows one evaluation reads.
const MaxRecentBiometrics = 500

// BiometricSource reads the biometric windows the nudge loop decides on,
// under the same evidence rule as CaptionSource, with a judged mark of its
// own per device.
type BiometricSource interface {
	// RecentBiometrics is RecentCaptions for windows: those that ended at
	// or after since, and the unjudged ones that ended at or after
	// unjudgedSince; oldest first, at most the newest MaxRecentBiometrics.
	RecentBiometrics(ctx context.Context, device string, since, unjudgedSince time.Time) (BiometricSet, error)
	// MarkBiometricsJudged records mark (from a BiometricSet of this
	// device): what it covers is never New again.
	MarkBiometricsJudged(ctx context.Context, device, mark string) error
	// ActiveBiometricDevices returns the devices with at least one window
	// that ended at or after since.
	ActiveBiometricDevices(ctx context.Context, since time.Time) ([]string, error)
}

// AlertLevels are the risk prediction's alert levels, lowest first.
var AlertLevels = []string{"NO ALERT", "LOW ALERT", "MODERATE ALERT", "HIGH ALERT", "CRITICAL ALERT"}

// AlertRank is level's place in AlertLevels, -1 when it is none of them.
func AlertRank(level string) int {
	for i, l := range AlertLevels {
		if l == level {
			return i
		}
	}
	return -1
}
