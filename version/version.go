// Package version is uni's one version: `uni version` prints it, config.json
// records it as the build tool, and the Packer plugin reports it to Packer.
package version

import (
	"runtime/debug"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Base is the version of an untagged build: a checkout, `go build`.
const Base = "0.1.0"

// release is set by release builds: -ldflags "-X
// github.com/uniforge/packer-plugin-unikernel/version.release=1.2.3".
var release string

// Version is the release version without a leading v. A release build says
// what its -ldflags set; `go install …/cmd/uni@v1.2.3` says 1.2.3, read from
// the module version the go command stamps; anything else (a checkout, a
// pseudo-version, a dirty tree) says Base, so builds from one source tree
// record the same tool in config.json whatever commit stamp Go adds.
func Version() string {
	if release != "" {
		return strings.TrimPrefix(release, "v")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := tagged(bi.Main.Version); v != "" {
			return v
		}
	}
	return Base
}

// tagged returns v without its leading v when it is a tagged release
// version, and "" for "(devel)", pseudo-versions and +dirty builds.
func tagged(v string) string {
	if !semver.IsValid(v) || module.IsPseudoVersion(v) || semver.Build(v) != "" {
		return ""
	}
	return strings.TrimPrefix(v, "v")
}
