package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

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

// DatabaseNone is the FORESIGHT_DATABASE_URL that keeps no caption.
const DatabaseNone = "none"

// Kinds of caption store ParseDatabaseURL tells apart.
const (
	StoreNone     = "none"
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// ParseDatabaseURL splits a FORESIGHT_DATABASE_URL into the store's kind and
// what its adapter opens: a file path for SQLite, the DSN for Postgres.
func ParseDatabaseURL(v string) (kind, target string, err error) {
	switch {
	case v == DatabaseNone:
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
// recorder that writes to it off the ack path, the retention sweeper and
// the GET /captions handler. It is built before start and opened by
// open, so a server that fails to build holds no database.
type captionMemory struct {
	cfg    Config
	obs    domain.RecorderObserver
	logger *slog.Logger

	// Set by open, before the server listens, and not changed after.
	store         ports.CaptionStore // nil when off
	recorder      *domain.Recorder
	stopRetention func()
	captions      http.Handler

	closeOnce sync.Once
}

func newCaptionMemory(cfg Config, m *metrics.Metrics, logger *slog.Logger) *captionMemory {
	var obs domain.RecorderObserver = domain.NopRecorderObserver{}
	if m != nil {
		obs = metrics.NewRecorderMetrics(m.Registry())
	}
	return &captionMemory{cfg: cfg, obs: obs, logger: logger}
}

// open opens the store (applying its migrations), starts the recorder and
// the retention sweeper.
func (c *captionMemory) open(ctx context.Context) error {
	kind, target, err := ParseDatabaseURL(c.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("caption store: %w", err)
	}
	var store ports.CaptionStore
	switch kind {
	case StoreNone:
		c.logger.Info("caption store off: captions are not kept", "database_url", DatabaseNone)
		return nil
	case StoreSQLite:
		s, err := sqlite.Open(ctx, target)
		if err != nil {
			return fmt.Errorf("caption store %s: %w", RedactDatabaseURL(c.cfg.DatabaseURL), err)
		}
		store = s
	case StorePostgres:
		s, err := postgres.Open(ctx, target)
		if err != nil {
			// pgx's errors name host, user and database, never the password.
			return fmt.Errorf("caption store %s: %w", RedactDatabaseURL(c.cfg.DatabaseURL), err)
		}
		store = s
	}
	c.store = store
	c.recorder = domain.NewRecorder(store, domain.RecorderConfig{
		QueueSize: c.cfg.CaptionQueue,
		Observer:  c.obs,
		Logger:    c.logger,
	})
	if c.cfg.CaptionRetention > 0 {
		c.stopRetention = domain.StartRetention(store, domain.RetentionConfig{MaxAge: c.cfg.CaptionRetention, Logger: c.logger})
	}
	c.captions = httpapi.NewCaptionsHandler(store, c.logger)
	c.logger.Info("caption store open", "database_url", RedactDatabaseURL(c.cfg.DatabaseURL),
		"retention", c.cfg.CaptionRetention, "queue", c.cfg.CaptionQueue)
	return nil
}

// Record hands c to the recorder; without a store it keeps nothing.
func (c *captionMemory) Record(caption ports.Caption) {
	if c.recorder != nil {
		c.recorder.Record(caption)
	}
}

// ServeHTTP is GET /captions: the store's answer, or a clear 503 when the
// store is off.
func (c *captionMemory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.captions == nil {
		httpapi.WriteDetail(w, http.StatusServiceUnavailable, "caption store is off (FORESIGHT_DATABASE_URL=none)")
		return
	}
	c.captions.ServeHTTP(w, r)
}

// stopSteps are the visual memory's part of the stop sequence, run once
// the streams have ended (no more Record): write every queued caption,
// stop the sweeper, close the database.
func (c *captionMemory) stopSteps() []stopStep {
	return []stopStep{
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
