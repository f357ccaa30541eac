package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// DefaultDatabaseURL keeps captions in a SQLite file beside the working
// directory, so `make run` remembers with nothing installed.
const DefaultDatabaseURL = "sqlite:data/foresight.db"

// Kinds of caption store ParseDatabaseURL tells apart. StoreNone is also
// the FORESIGHT_DATABASE_URL that keeps no caption.
const (
	StoreNone     = "none"
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// ParseDatabaseURL splits a FORESIGHT_DATABASE_URL into the store's kind and
// what its adapter opens: a file path for SQLite, the DSN for Postgres.
func ParseDatabaseURL(v string) (kind, target string, err error) {
	switch {
	case v == StoreNone:
		return StoreNone, "", nil
	case strings.HasPrefix(v, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(v, "sqlite:"), "//") // sqlite:///abs/path, URL style
		if path == "" {
			return "", "", errors.New("sqlite: needs a file path, e.g. sqlite:data/foresight.db")
		}
		return StoreSQLite, path, nil
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		if _, err := url.Parse(v); err != nil {
			return "", "", errors.New("not a valid postgres URL") // url's error would quote the password
		}
		return StorePostgres, v, nil
	}
	return "", "", fmt.Errorf("want sqlite:<path>, postgres://… or none, got %q", RedactDatabaseURL(v))
}

// RedactDatabaseURL is v with any password replaced, fit for a log line.
func RedactDatabaseURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		if strings.Contains(v, "@") || strings.Contains(strings.ToLower(v), "password") {
			return "(redacted)"
		}
		return v // sqlite:<path> and none hold no secret
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// captionMemory is the visual memory as the app runs it: the store, the
// recorder that writes to it off the ack path and the retention sweeper.
// It is built before start and opened by open, so a server that fails to
// build holds no database.
type captionMemory struct {
	cfg    Config
	logger *slog.Logger

	// sink is where streams hand their captions: the recorder, or nothing
	// when the store is off. Set when built, so the streams get it then;
	// the recorder queues until open starts it.
	sink     ports.CaptionSink
	recorder *domain.Recorder // nil when the store is off

	// Set by open, before the server listens, and not changed after.
	store         ports.CaptionStore // nil when off
	stopRetention func()
	// biometrics takes the wearer app's uploads into the same store; nil
	// when off. bioStopRetention sweeps them with the captions' MaxAge.
	biometrics       *domain.BiometricIntake
	bioStopRetention func()

	closeOnce sync.Once
	// stored, when set, is called after each batch the recorder writes
	// (the embeddings indexer's wake-up, app/ask.go).
	stored atomic.Pointer[func()]
}

// onStored sets what runs after each batch the recorder writes.
func (c *captionMemory) onStored(f func()) { c.stored.Store(&f) }

// storedObserver tells the captionMemory that captions were written.
type storedObserver struct {
	domain.RecorderObserver
	c *captionMemory
}

func (o storedObserver) CaptionsStored(n int) {
	o.RecorderObserver.CaptionsStored(n)
	if f := o.c.stored.Load(); f != nil && n > 0 {
		(*f)()
	}
}

func newCaptionMemory(cfg Config, m *metrics.Metrics, logger *slog.Logger) *captionMemory {
	c := &captionMemory{cfg: cfg, logger: logger, sink: ports.NopCaptionSink{}}
	if kind, _, err := ParseDatabaseURL(cfg.DatabaseURL); err != nil || kind == StoreNone {
		return c // a bad URL fails open, with its reason
	}
	var obs domain.RecorderObserver = domain.NopRecorderObserver{}
	if m != nil {
		obs = metrics.NewRecorderMetrics(m.Registry())
	}
	c.recorder = domain.PrepareRecorder(domain.RecorderConfig{
		QueueSize: cfg.CaptionQueue,
		Observer:  storedObserver{RecorderObserver: obs, c: c},
		Logger:    logger,
	})
	c.sink = c.recorder
	return c
}

// open opens the store (applying its migrations), starts the recorder and
// the retention sweeper.
func (c *captionMemory) open(ctx context.Context) error {
	kind, _, err := ParseDatabaseURL(c.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("caption store: %w", err)
	}
	if kind == StoreNone {
		c.logger.Info("caption store off: captions are not kept", "database_url", StoreNone)
		return nil
	}
	db, err := openDatabase(ctx, c.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("caption store: %w", err)
	}
	var store ports.CaptionStore = db
	c.store = store
	c.recorder.Start(store)
	if c.cfg.CaptionRetention > 0 {
		c.stopRetention = domain.StartRetention(store, domain.RetentionConfig{MaxAge: c.cfg.CaptionRetention, Logger: c.logger})
	}
	if bio, ok := store.(ports.BiometricStore); ok {
		c.biometrics = domain.NewBiometricIntake(bio, domain.BiometricIntakeConfig{QueueSize: c.cfg.BiometricQueue,
			Writer: domain.BatchWriterConfig{Logger: c.logger}})
		if c.cfg.CaptionRetention > 0 {
			c.bioStopRetention = domain.StartRetention(biometricPruner{bio},
				domain.RetentionConfig{MaxAge: c.cfg.CaptionRetention, Logger: c.logger})
		}
	}
	c.logger.Info("caption store open", "database_url", RedactDatabaseURL(c.cfg.DatabaseURL),
		"retention", c.cfg.CaptionRetention, "queue", c.cfg.CaptionQueue)
	return nil
}

// captionReader is what GET /captions reads: the store, or nil when it is
// off (httpapi answers 503 then).
func (c *captionMemory) captionReader() ports.CaptionReader {
	if c.store == nil {
		return nil
	}
	return c.store
}

// cursorSigner seals the list routes' cursors with the configured secret,
// or with the process's random key when none is set.
func (c *captionMemory) cursorSigner() *httpapi.CursorSigner {
	return httpapi.NewCursorSigner(c.cfg.CursorSecret)
}

// stopSteps are the visual memory's part of the stop sequence, run once
// the streams have ended (no more Record): write every queued caption,
// stop the sweeper, close the database.
func (c *captionMemory) stopSteps() []stopStep {
	return []stopStep{
		{"biometric writer", func(ctx context.Context) error {
			if c.bioStopRetention != nil {
				c.bioStopRetention()
			}
			if c.biometrics == nil {
				return nil
			}
			return c.biometrics.Close(ctx)
		}},
		{"caption recorder", func(ctx context.Context) error {
			if c.recorder == nil {
				return nil
			}
			return c.recorder.Close(ctx)
		}},
		{"caption retention", func(context.Context) error {
			if c.stopRetention != nil {
				c.stopRetention()
			}
			return nil
		}},
		{"caption store", func(context.Context) error { return c.closeStore() }},
	}
}

// biometricIntake is what POST /biometrics/upload hands windows to; nil
// (503) when the store is off.
func (c *captionMemory) biometricIntake() httpapi.BiometricIntake {
	if c.biometrics == nil {
		return nil
	}
	return c.biometrics
}

// biometricStore is what GET /biometrics reads; nil when off.
func (c *captionMemory) biometricStore() ports.BiometricStore {
	if c.biometrics == nil {
		return nil
	}
	bio, _ := c.store.(ports.BiometricStore)
	return bio
}

// biometricPruner sweeps biometric windows with the caption sweeper.
type biometricPruner struct{ ports.BiometricStore }

func (p biometricPruner) DeleteCaptionsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	return p.DeleteBiometricsBefore(ctx, t, limit)
}

func (c *captionMemory) closeStore() error {
	var err error
	c.closeOnce.Do(func() {
		if c.store != nil {
			err = c.store.Close()
		}
	})
	return err
}

// captionLabels are the backend and model names kept with each caption:
// those of /status and the start-up line, so the three agree.
func captionLabels(cfg Config) (backend, model string) {
	info := inferenceInfoOf(cfg)
	return info.Backend, info.Model
}

// database is what both stores are: every store port, and Close.
type database interface {
	ports.CaptionStore
	ports.TokenStore
	ports.DeviceSecrets
	Close() error
}

var (
	_ database = (*sqlite.Store)(nil)
	_ database = (*postgres.Store)(nil)
)

// openDatabase opens the database url names, applying its migrations under
// the lock every opener takes (so the server, `foresight token` and
// `foresight device` may open it side by side). Its errors name the URL
// with the password redacted (pgx's errors name host, user and database,
// never the password).
func openDatabase(ctx context.Context, url string) (database, error) {
	kind, target, err := ParseDatabaseURL(url)
	if err != nil {
		return nil, err
	}
	var db database
	switch kind {
	case StoreSQLite:
		db, err = sqlite.Open(ctx, target)
	case StorePostgres:
		db, err = postgres.Open(ctx, target)
	default:
		return nil, errors.New("FORESIGHT_DATABASE_URL is none: no database to open")
	}
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", RedactDatabaseURL(url), err)
	}
	return db, nil
}
