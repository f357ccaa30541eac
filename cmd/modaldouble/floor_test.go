package main

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFloorMakesPairsOfCallsAgainstTheDouble(t *testing.T) {
	srv := modaltest.New(t)
	line, err := runFloor(floorConfig{url: srv.URL(), streams: 3, interval: 50 * time.Millisecond, duration: 300 * time.Millisecond})
	require.NoError(t, err)
	m := regexp.MustCompile(`^rpc floor: (\d+) pairs \((\d+) failed\) in .*, ([0-9.]+) us per pair$`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	pairs, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, pairs, 3, "at least one pair per caller, in all")
	assert.Equal(t, "0", m[2])
	// Two calls per pair, plus the first call that checks the connection.
	assert.Equal(t, 2*pairs+1, srv.AuthTokenGets())
}

func TestFloorRefusesAURLItCannotDial(t *testing.T) {
	_, err := runFloor(floorConfig{url: "https://example.invalid", streams: 1, interval: time.Second, duration: time.Second})
	assert.ErrorContains(t, err, "want an http:// URL")
}
