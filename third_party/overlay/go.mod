// The patched files that the build overlay substitutes for upstream ones
// (internal/sdkoverlay, ../README.md). A module of its own only so that
// `go build ./...` and `go vet ./...` in the main module skip these files:
// they are compiled only in place of the upstream files, never here.
module github.com/control-plane/cp/third_party/overlay

go 1.26.0
