// Package distro downloads the distribution's kernel packages on a
// Debian-family host, with apt-get download (no root, no dpkg database).
package distro

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
)

// CloudKernelMetapackage is the Debian metapackage that depends on the
// current cloud kernel for the host's architecture.
func CloudKernelMetapackage() string {
	return "linux-image-cloud-" + runtime.GOARCH
}

// DownloadCloudKernel puts the .deb of the distribution's current cloud
// kernel in dir and returns its path: it downloads the metapackage with
// apt-get download, reads which linux-image-<release> package (and
// version) it depends on, and downloads that unless dir already has it.
func DownloadCloudKernel(ctx context.Context, dir string) (string, error) {
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("apt-get not found: the distribution kernel can only be downloaded on a Debian-family host")
	}
	// apt drops to the _apt user for downloads; let it write here.
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", err
	}
	meta := CloudKernelMetapackage()
	metaDeb, err := aptDownload(ctx, apt, dir, meta, "")
	if err != nil {
		return "", err
	}
	ctl, err := deb.ReadControl(metaDeb)
	if err != nil {
		return "", err
	}
	var target deb.Dependency
	for _, d := range ctl.Depends("Depends") {
		if strings.HasPrefix(d.Name, "linux-image-") {
			target = d
			break
		}
	}
	if target.Name == "" {
		return "", fmt.Errorf("%s: Depends names no linux-image package: %q", metaDeb, ctl.Get("Depends"))
	}
	version := ""
	if target.Relation == "=" {
		version = target.Version
	}
	if p := findDeb(dir, target.Name, version); p != "" {
		return p, nil
	}
	return aptDownload(ctx, apt, dir, target.Name, version)
}

// aptDownload runs apt-get download for pkg (at version, if given) in dir
// and returns the downloaded file.
func aptDownload(ctx context.Context, apt, dir, pkg, version string) (string, error) {
	arg := pkg
	if version != "" {
		arg += "=" + version
	}
	cmd := exec.CommandContext(ctx, apt, "download", arg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %v: %s", arg, err, strings.TrimSpace(string(out)))
	}
	p := findDeb(dir, pkg, version)
	if p == "" {
		return "", fmt.Errorf("apt-get download %s: no %s_*.deb in %s", arg, pkg, dir)
	}
	return p, nil
}

// findDeb returns the .deb in dir whose control file names pkg (at
// version, if given), or "".
func findDeb(dir, pkg, version string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	for _, m := range matches {
		ctl, err := deb.ReadControl(m)
		if err != nil || ctl.Get("Package") != pkg {
			continue
		}
		if version == "" || ctl.Get("Version") == version {
			return m
		}
	}
	return ""
}
