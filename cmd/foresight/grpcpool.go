package main

import "github.com/foresight-vision/foresight/adapters/inference/modal"

// gRPC takes its buffer pool only at initialisation, before any connection
// exists; the Modal adapter is this binary's only gRPC client.
func init() { modal.SetGRPCBufferPool() }
