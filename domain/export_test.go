package domain

import "context"

// AwaitCall blocks until the call in flight (if any) finishes and applies
// its outcome, so tests need not race the background goroutine.
func (s *Stream) AwaitCall() { s.Await(context.Background()) }

// Buffered reports the frames and bytes waiting for the next chunk.
func (s *Stream) Buffered() (int, int64) { return s.buf.count, s.buf.bytes }
