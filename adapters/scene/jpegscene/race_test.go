//go:build race

package jpegscene_test

// raceEnabled: the race detector slows image/jpeg about tenfold, so the
// calibration runs only its small clip under it.
const raceEnabled = true
