// Package version is the plugin's version, which Packer reads through the
// plugin's describe command. Releases set Version with -ldflags -X.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the release version, without a leading v.
	Version = "0.1.0"
	// VersionPrerelease marks a development build ("dev"); empty for a release.
	VersionPrerelease = "dev"
	// VersionMetadata is build metadata, e.g. a commit.
	VersionMetadata = ""
)

// PluginVersion is the version the plugin set reports.
var PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
