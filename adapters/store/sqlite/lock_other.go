//go:build !unix

package sqlite

// lockFile is a no-op where flock is missing: the busy timeout is all there is.
func lockFile(string) (func(), error) { return func() {}, nil }

// tryLockFile is a no-op where flock is missing: nothing keeps a second
// process from running the nudge loop.
func tryLockFile(string) (func(), error) { return func() {}, nil }
