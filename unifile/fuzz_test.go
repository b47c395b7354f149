package unifile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fuzzBase is the base image every FROM <image> gets under FuzzParse: an
// Env to expand, a working directory, a program, ports and labels.
func fuzzBase(ref, _ string) (*ImageConfig, error) {
	if strings.HasPrefix(ref, "missing") {
		return nil, errors.New("no such image")
	}
	return &ImageConfig{
		Env:          []string{"HOME=/home/app", "PORT=8080", "EMPTY="},
		WorkingDir:   "/srv",
		User:         "app",
		Entrypoint:   []string{"/usr/bin/app"},
		Cmd:          []string{"--serve"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "9/sctp": {}},
		Labels:       map[string]string{"base": "1"},
	}, nil
}

// FuzzParse checks that Parse never panics, that every error is an *Error,
// and that what it accepts keeps the promised invariants: bounded memory,
// CPUs and ports, paths without control characters and within Linux's
// limits, a located INCLUDE, PATH in every environment, the program to run
// present. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add("FROM scratch\nCMD [\"/a\"]\n", "")
	f.Fuzz(func(t *testing.T, src, buildArg string) {
		opts := Options{BuildArgs: map[string]string{"A": buildArg}, BaseImage: fuzzBase}
		u, err := Parse(strings.NewReader(src), opts)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != DefaultFilename || e.Line < 0 || e.Msg == "" {
				t.Fatalf("error %#v is not a located *Error", err)
			}
			return
		}
		again, err := Parse(strings.NewReader(src), opts)
		if err != nil || !reflect.DeepEqual(u, again) {
			t.Fatalf("second parse differs: %v", err)
		}
		s := u.Final()
		argv := s.Argv()
		if len(argv) == 0 || argv[0] == "" || checkPath("argv[0]", argv[0]) != nil {
			t.Fatalf("accepted a last stage whose program to run is %q", argv)
		}
		if s.MemoryBytes < MinMemoryBytes || s.MemoryBytes > MaxMemoryBytes || s.CPUs < MinCPUs || s.CPUs > MaxCPUs {
			t.Fatalf("out of bounds: memory %d cpus %d", s.MemoryBytes, s.CPUs)
		}
		for _, p := range s.Includes {
			if !strings.HasPrefix(p, "/") || checkPath("INCLUDE", p) != nil {
				t.Fatalf("bad INCLUDE %q", p)
			}
			if at, ok := s.IncludeAt[p]; !ok || at.Line < 1 {
				t.Fatalf("INCLUDE %q has no line", p)
			}
		}
		if len(s.ExposedPorts) > MaxExposedPorts {
			t.Fatalf("%d ports exposed", len(s.ExposedPorts))
		}
		for _, p := range s.ExposedPorts {
			if p.Port == 0 || (p.Protocol != "tcp" && p.Protocol != "udp") {
				t.Fatalf("bad port %+v", p)
			}
		}
		for i, st := range u.Stages {
			if st.Index != i {
				t.Fatalf("stage %d has index %d", i, st.Index)
			}
			if !hasPath(st.Env) {
				t.Fatalf("stage %d has no PATH: %q", i, st.Env)
			}
			if st.WorkingDir != "" && (!strings.HasPrefix(st.WorkingDir, "/") || checkPath("WORKDIR", st.WorkingDir) != nil) {
				t.Fatalf("stage %d has working directory %q", i, st.WorkingDir)
			}
			for _, in := range st.Instructions {
				c, ok := in.(*Copy)
				if !ok {
					continue
				}
				if c.From.Kind == FromStage && c.From.Stage >= i {
					t.Fatalf("stage %d copies from stage %d", i, c.From.Stage)
				}
				for _, p := range append([]string{c.Dest}, c.Sources...) {
					if checkPath("COPY", p) != nil {
						t.Fatalf("COPY path %q accepted", p)
					}
				}
				for _, in := range c.Inline {
					if checkPath("COPY", in.Name) != nil {
						t.Fatalf("heredoc name %q accepted", in.Name)
					}
				}
			}
		}
		_ = CheckEmbedded(u)
		// What BuildKit gets is the same file without the unikernel keywords,
		// line for line.
		stripped, err := StripUnikernelKeywords([]byte(src))
		if err != nil {
			t.Fatalf("Parse accepted what StripUnikernelKeywords refuses: %v", err)
		}
		if strings.Count(string(stripped), "\n") != strings.Count(src, "\n") {
			t.Fatalf("stripping changed the number of lines")
		}
	})
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}
