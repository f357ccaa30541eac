package app

import (
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
)

// newObserver returns the Prometheus metrics when they are on.
func newObserver(cfg Config) (httpapi.Observer, *metrics.Metrics) {
	if !cfg.Metrics {
		return httpapi.NopObserver{}, nil
	}
	m := metrics.New()
	return m, m
}
