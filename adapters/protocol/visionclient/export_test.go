package visionclient

// ReaderBlocked reports whether a ReadAck holds the read lock, so a test can
// close the connection under a reader that is really blocked rather than
// sleep and hope the reader got there first.
func (c *Conn) ReaderBlocked() bool {
	if c.rmu.TryLock() {
		c.rmu.Unlock()
		return false
	}
	return true
}
