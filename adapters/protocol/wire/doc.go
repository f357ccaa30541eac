// Package wire holds the names the clients, the gateway and the server share
// on the wire: header and query names, paths, ack fields and WebSocket close
// codes. It imports nothing, so any package (the standalone gateway, the
// replay and bench clients) can use it without pulling in the server.
package wire
