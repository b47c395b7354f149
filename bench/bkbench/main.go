// Command bkbench does the parts of bench/buildkit.sh that want a library:
//
//	bkbench base -ref 127.0.0.1:5000/bench/node:20 [-program /usr/bin/node]
//	    makes a node base image of this machine's node and pushes it: one layer
//	    with the program and every library ldd lists, at their real paths, with
//	    the symlinks on the way (lib -> usr/lib, the lib64 loader link) as the
//	    host lays them out, and an /etc/passwd.
//	bkbench llb -ref REF > def.pb
//	    writes the LLB definition of the image REF, with an empty file made on
//	    top so that BuildKit has to pull and unpack every layer (a bare image
//	    source stays lazy: without an output its layers are never fetched);
//	    `buildctl build < def.pb` then times a cold pull.
//	bkbench steps < progress.json
//	    reads BuildKit's rawjson progress (buildx or buildctl --progress=rawjson)
//	    and prints a markdown row per step: its time, or CACHED; then the span
//	    from the first step's start to the last one's end.
//	bkbench size -ref REF
//	    prints the sum of the layer sizes the image's manifest lists and the
//	    sum of the layers' uncompressed tar streams, in bytes.
package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bkbench base|llb|size -ref REF, or bkbench steps < progress.json")
		os.Exit(2)
	}
	ctx := context.Background()
	fl := flag.NewFlagSet("bkbench "+os.Args[1], flag.ExitOnError)
	ref := fl.String("ref", "", "the image reference")
	program := fl.String("program", "/usr/bin/node", "base: the program the image holds")
	bare := fl.Bool("bare", false, "llb: the bare image source, with no file made on top")
	_ = fl.Parse(os.Args[2:])
	if *ref == "" && os.Args[1] != "steps" {
		fmt.Fprintln(os.Stderr, "bkbench: -ref is required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "base":
		err = pushBase(ctx, *ref, *program)
	case "llb":
		err = writeLLB(ctx, *ref, *bare, os.Stdout)
	case "steps":
		err = printSteps(os.Stdin, os.Stdout)
	case "size":
		var c, u int64
		if c, u, err = layerBytes(ctx, *ref); err == nil {
			fmt.Println(c, u)
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bkbench:", err)
		os.Exit(1)
	}
}

// parseRef parses ref; the bench's registry is plain HTTP on loopback.
func parseRef(ref string) (name.Reference, error) {
	return name.ParseReference(ref, name.Insecure)
}

// writeLLB writes the definition of image ref, unpacked unless bare.
func writeLLB(ctx context.Context, ref string, bare bool, w io.Writer) error {
	st := llb.Image(ref, llb.LinuxAmd64)
	if !bare {
		st = st.File(llb.Mkfile("/.bkbench-pulled", 0o644, nil))
	}
	def, err := st.Marshal(ctx, llb.LinuxAmd64)
	if err != nil {
		return err
	}
	return llb.WriteTo(def, w)
}

// step is what the progress stream said of one vertex, over all the
// records it sent for it (a vertex the frontend solved is reported again,
// cached, when the final result is built).
type step struct {
	name           string
	first, last    time.Time // earliest start, latest completion
	ran            time.Duration
	cached, solved bool
}

// printSteps prints the steps of a rawjson progress stream, in the order
// they started: the longest run of each, or CACHED when BuildKit said so
// and it ran for less than 10 ms (BuildKit reports a cached step as done
// in no time, then as cached; the plain display shows it as CACHED).
func printSteps(r io.Reader, w io.Writer) error {
	steps := map[string]*step{}
	var order []string
	dec := json.NewDecoder(r)
	for {
		var st client.SolveStatus
		if err := dec.Decode(&st); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("progress: %w", err)
		}
		for _, v := range st.Vertexes {
			s, ok := steps[v.Digest.String()]
			if !ok {
				s = &step{name: v.Name}
				steps[v.Digest.String()] = s
				order = append(order, v.Digest.String())
			}
			if v.Completed == nil {
				continue
			}
			started := *v.Completed // a cached step may have no start
			if v.Started != nil {
				started = *v.Started
			}
			s.solved = true
			if s.first.IsZero() || started.Before(s.first) {
				s.first = started
			}
			if v.Completed.After(s.last) {
				s.last = *v.Completed
			}
			if v.Cached {
				s.cached = true
			} else {
				s.ran = max(s.ran, v.Completed.Sub(started))
			}
		}
	}
	slices.SortStableFunc(order, func(a, b string) int { return steps[a].first.Compare(steps[b].first) })
	var first, last time.Time
	for _, d := range order {
		s := steps[d]
		if !s.solved {
			continue
		}
		if first.IsZero() || s.first.Before(first) {
			first = s.first
		}
		if s.last.After(last) {
			last = s.last
		}
		name := strings.ReplaceAll(s.name, "|", "\\|")
		if len(name) > 90 {
			name = name[:90] + "…"
		}
		switch {
		case s.ran >= 10*time.Millisecond:
			fmt.Fprintf(w, "| %s | %.2f s |\n", name, s.ran.Seconds())
		case s.cached:
			fmt.Fprintf(w, "| %s | CACHED |\n", name)
		}
	}
	if first.IsZero() {
		return errors.New("progress: no step completed")
	}
	fmt.Fprintf(w, "| from the first step's start to the last step's end | %.2f s |\n", last.Sub(first).Seconds())
	return nil
}

// layerBytes is the sum of the layer sizes image ref's manifest lists
// (compressed), and of the layers' tar streams (uncompressed).
func layerBytes(ctx context.Context, ref string) (compressed, uncompressed int64, err error) {
	r, err := parseRef(ref)
	if err != nil {
		return 0, 0, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return 0, 0, err
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	for _, d := range m.Layers {
		compressed += d.Size
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return 0, 0, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		uncompressed += n
	}
	return compressed, uncompressed, nil
}

// pushBase makes and pushes the node base image.
func pushBase(ctx context.Context, ref, program string) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	paths, err := lddPaths(program)
	if err != nil {
		return err
	}
	t := tree{}
	for _, p := range append([]string{program}, paths...) {
		if err := t.add(p); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp("", "bkbench-layer-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := t.write(f, map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
		"/etc/group":  "root:x:0:\nnode:x:1000:\n",
	}); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(f.Name(), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"node"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return remote.Write(r, img, remote.WithContext(ctx))
}

// lddPaths are the libraries ldd lists for program, the loader included.
func lddPaths(program string) ([]string, error) {
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", program, err)
	}
	var paths []string
	for _, m := range regexp.MustCompile(`(?m)(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		paths = append(paths, m[1])
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("ldd %s listed no libraries", program)
	}
	return paths, nil
}

// entry is one file of the layer: a directory, a symlink or a regular file
// copied from the host.
type entry struct {
	mode fs.FileMode
	link string // symlink target
}

// tree is the layer's entries by absolute path.
type tree map[string]entry

// add puts p into the tree as the host has it: every directory on the way,
// every symlink met while resolving it (and what it points to), and the
// regular file it ends in.
func (t tree) add(p string) error {
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	cur := "/"
	for hops := 0; len(rest) > 0; {
		next := path.Join(cur, rest[0])
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > 40 {
				return fmt.Errorf("%s: too many symlinks", p)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			t[next] = entry{mode: fs.ModeSymlink | 0o777, link: target}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), rest[1:]...)
			cur = "/"
		case fi.IsDir():
			t[next] = entry{mode: fi.Mode()}
			cur, rest = next, rest[1:]
		case fi.Mode().IsRegular() && len(rest) == 1:
			t[next] = entry{mode: fi.Mode()}
			rest = nil
		default:
			return fmt.Errorf("%s: %s is neither a directory, a symlink nor a regular file at the end", p, next)
		}
	}
	return nil
}

// write writes the tree and the extra files (path → body) as a tar, sorted,
// so a parent comes before what it holds, with a fixed time.
func (t tree) write(w io.Writer, extra map[string]string) error {
	for p := range extra {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			t[d] = entry{mode: fs.ModeDir | 0o755}
		}
		t[p] = entry{mode: 0o644}
	}
	names := make([]string, 0, len(t))
	for p := range t {
		names = append(names, p)
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, p := range names {
		e := t[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: int64(e.mode.Perm()), ModTime: epoch, Format: tar.FormatPAX}
		var body io.Reader
		switch {
		case e.mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		default:
			h.Typeflag = tar.TypeReg
			if s, ok := extra[p]; ok {
				h.Size, body = int64(len(s)), strings.NewReader(s)
			} else {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				h.Size, body = fi.Size(), f
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if body != nil {
			if n, err := io.Copy(tw, body); err != nil {
				return err
			} else if n != h.Size {
				return errors.New(p + ": changed while read")
			}
		}
	}
	return tw.Close()
}
