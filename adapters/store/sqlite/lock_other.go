//go:build !unix

package sqlite

// lockFile is a no-op where flock is missing: the busy timeout is all there is.
func lockFile(string) (func(), error) { return func() {}, nil }
