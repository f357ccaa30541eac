//go:build !race

package jpegscene_test

const raceEnabled = false
