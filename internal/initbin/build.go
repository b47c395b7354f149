package initbin

// BuildEnv and BuildArgs are how the init is built, by `make init` (through
// scripts/build-init.sh) and by the freshness test alike.
var BuildEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly"}

// BuildArgs is the argv of `go` that builds the init package pkg into out.
func BuildArgs(out, pkg string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, pkg}
}
