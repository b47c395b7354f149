// Package distro gets the distribution's kernel packages on a Debian-family
// host. apt says where a package is and what it must be (its URI, size and
// SHA256 from apt's signed index); the download itself is ours, over HTTP,
// so that it can be measured, cancelled and checked before anything reads
// it. It needs no root and no dpkg database.
package distro

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/uniforge/packer-plugin-unikernel/internal/atomicfile"
	"github.com/uniforge/packer-plugin-unikernel/internal/progress"
	"github.com/uniforge/packer-plugin-unikernel/kernel/deb"
)

// ErrMismatch is returned (wrapped) when a downloaded or cached package is
// not the one apt's index describes: its size or SHA256 differ.
var ErrMismatch = errors.New("package does not match apt's index")

// DownloadError is a failed or interrupted download of a package: the
// network, the mirror, a cancellation (errors.Is(err, context.Canceled)), or
// bytes that do not match the index (errors.Is(err, ErrMismatch)). It says
// that getting the package failed, not that the package was the wrong one
// to ask for.
type DownloadError struct {
	Package string // name=version
	URI     string
	Err     error
}

func (e *DownloadError) Error() string {
	return fmt.Sprintf("downloading %s from %s: %v", e.Package, e.URI, e.Err)
}

func (e *DownloadError) Unwrap() error { return e.Err }

// Package is one binary package as apt's index describes it.
type Package struct {
	Name    string
	Version string
	URI     string // where apt would fetch it from
	File    string // the archive's file name, name_version_arch.deb
	Size    int64
	SHA256  string // lower-case hex
}

func (p Package) String() string { return p.Name + "=" + p.Version }

// CloudKernelMetapackage is the Debian metapackage that depends on the
// current cloud kernel for the host's architecture.
func CloudKernelMetapackage() string {
	return "linux-image-cloud-" + runtime.GOARCH
}

// CloudKernel finds the package of the distribution's current cloud
// kernel: the linux-image-<release> package (and version) that apt's
// candidate of the metapackage depends on.
func CloudKernel(ctx context.Context) (Package, error) {
	meta := CloudKernelMetapackage()
	out, err := aptOutput(ctx, "apt-cache", "show", "--no-all-versions", meta)
	if err != nil {
		return Package{}, err
	}
	ctl, err := deb.ParseControl(bytes.NewReader(out))
	if err != nil {
		return Package{}, fmt.Errorf("apt-cache show %s: %w", meta, err)
	}
	for _, d := range ctl.Depends("Depends") {
		if !strings.HasPrefix(d.Name, "linux-image-") {
			continue
		}
		version := ""
		if d.Relation == "=" {
			version = d.Version
		}
		return Locate(ctx, d.Name, version)
	}
	return Package{}, fmt.Errorf("apt-cache show %s: Depends names no linux-image package: %q", meta, ctl.Get("Depends"))
}

// Locate asks apt where pkg (at version, or apt's candidate when version is
// "") is and what it must be, without downloading it.
func Locate(ctx context.Context, pkg, version string) (Package, error) {
	arg := pkg
	if version != "" {
		arg += "=" + version
	}
	out, err := aptOutput(ctx, "apt-get", "--print-uris", "download", arg)
	if err != nil {
		return Package{}, err
	}
	p, err := parsePrintURIs(out)
	if err != nil {
		return Package{}, fmt.Errorf("apt-get --print-uris download %s: %w", arg, err)
	}
	p.Name = pkg
	p.Version = version
	if p.Version == "" {
		// The file name is name_version_arch.deb, with the epoch's ':' escaped as %3a.
		parts := strings.Split(strings.TrimSuffix(p.File, ".deb"), "_")
		if len(parts) == 3 {
			p.Version, _ = url.PathUnescape(parts[1])
		}
	}
	return p, nil
}

// parsePrintURIs reads the one line apt-get --print-uris download prints:
//
//	'http://deb.debian.org/…/linux-image-…_amd64.deb' linux-image-…_amd64.deb 26705532 SHA256:4fdd…
func parsePrintURIs(out []byte) (Package, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || !strings.HasPrefix(f[0], "'") || !strings.HasSuffix(f[0], "'") {
			continue
		}
		p := Package{URI: strings.Trim(f[0], "'"), File: f[1]}
		var err error
		if p.Size, err = strconv.ParseInt(f[2], 10, 64); err != nil || p.Size <= 0 {
			return Package{}, fmt.Errorf("bad size %q", f[2])
		}
		algo, sum, _ := strings.Cut(f[3], ":")
		if algo != "SHA256" {
			return Package{}, fmt.Errorf("apt's index gives no SHA256 for %s (only %s)", p.File, algo)
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return Package{}, fmt.Errorf("bad SHA256 %q", sum)
		}
		p.SHA256 = strings.ToLower(sum)
		if p.File != filepath.Base(p.File) || !strings.HasSuffix(p.File, ".deb") || strings.HasPrefix(p.File, ".") {
			return Package{}, fmt.Errorf("bad file name %q", p.File)
		}
		return p, nil
	}
	return Package{}, fmt.Errorf("no URI in its output: %q", strings.TrimSpace(string(out)))
}

// aptOutput runs an apt tool and returns its standard output.
func aptOutput(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil, fmt.Errorf("%s not found: the distribution kernel can only be downloaded on a Debian-family host: %w", tool, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), ctx.Err())
		}
		return nil, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Download fetches p into dir (a directory only this user can write) as
// p.File, checking its size and SHA256 against the index while it streams:
// the file appears under its name only when it matches. rep shows the
// progress (nil for none). The error is a *DownloadError.
func Download(ctx context.Context, p Package, dir string, rep *progress.Reporter) (string, error) {
	dst := filepath.Join(dir, p.File)
	task := rep.Start("downloading", "downloaded", p.Name+" "+p.Version, p.Size)
	err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		body, err := open(ctx, p.URI)
		if err != nil {
			return err
		}
		defer body.Close()
		return copyChecked(io.MultiWriter(w, task), body, p)
	})
	if err != nil {
		task.Fail()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return "", &DownloadError{Package: p.String(), URI: p.URI, Err: err}
	}
	task.Done()
	return dst, nil
}

// Verify checks that the file at path is p: its size and SHA256.
func Verify(path string, p Package) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := copyChecked(io.Discard, f, p); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// copyChecked copies r to w and fails unless r held exactly p.Size bytes
// whose SHA256 is p.SHA256.
func copyChecked(w io.Writer, r io.Reader, p Package) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, p.Size+1))
	if err != nil {
		return err
	}
	if n != p.Size {
		return fmt.Errorf("%s: %d bytes, the index says %d: %w", p.File, n, p.Size, ErrMismatch)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%s: SHA256 %s, the index says %s: %w", p.File, got, p.SHA256, ErrMismatch)
	}
	return nil
}

// open starts reading uri: http(s) through the proxy apt or the
// environment names, file: from the local disk (a mirror on disk).
func open(ctx context.Context, uri string) (io.ReadCloser, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		return os.Open(u.Path)
	case "http", "https":
	default:
		return nil, fmt.Errorf("unsupported URI scheme %q (apt method); download the package and import it with uni kernel import", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if proxy := aptProxy(ctx, u.Scheme); proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	client := &http.Client{Transport: tr}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.Body, nil
}

// aptProxy is the proxy apt is configured to use for scheme
// (Acquire::http::Proxy), or nil to follow the environment.
func aptProxy(ctx context.Context, scheme string) *url.URL {
	path, err := exec.LookPath("apt-config")
	if err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, path, "shell", "P", "Acquire::"+scheme+"::Proxy").Output()
	if err != nil {
		return nil
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "P=")
	if !ok {
		return nil
	}
	v = strings.Trim(v, "'")
	if v == "" || v == "DIRECT" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return nil
	}
	return u
}

// DownloadCloudKernel puts the .deb of the distribution's current cloud
// kernel in dir (a directory only this user can write) and returns its
// path. A file of that name already there is used only if it matches
// apt's index; otherwise it is downloaded afresh and replaces it.
func DownloadCloudKernel(ctx context.Context, dir string) (string, error) {
	var rep *progress.Reporter // tests and tools: no progress
	p, err := CloudKernel(ctx)
	if err != nil {
		return "", err
	}
	cached := filepath.Join(dir, p.File)
	if err := Verify(cached, p); err == nil {
		return cached, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		rep.Printf("ignoring %s: %v", cached, err)
	}
	return Download(ctx, p, dir, rep)
}
