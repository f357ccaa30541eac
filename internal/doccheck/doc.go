// Package doccheck holds no code: its tests check that the docs say what
// the code does (docs/architecture.md's tree and import rule against the
// module's real packages and imports).
package doccheck
