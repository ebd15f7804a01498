// Package lint holds the repository's own lint rules, written as Go tests so
// `go test ./...` enforces them: the allowed import arrows between packages
// (docs/DESIGN.md, "Layout") and banned calls.
package lint
