package unifile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is an *Error,
// and that what it accepts keeps the promised invariants. Seeds live in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add("FROM scratch\nCMD [\"/a\"]\n", "")
	f.Fuzz(func(t *testing.T, src, buildArg string) {
		opts := Options{BuildArgs: map[string]string{"A": buildArg}}
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
		if len(s.Argv()) == 0 && u.baseKind(s) != BaseImage {
			t.Fatal("accepted a last stage with nothing to run and no base image to take it from")
		}
		if s.MemoryBytes < MinMemoryBytes || s.MemoryBytes > MaxMemoryBytes || s.CPUs < MinCPUs || s.CPUs > MaxCPUs {
			t.Fatalf("out of bounds: memory %d cpus %d", s.MemoryBytes, s.CPUs)
		}
		for _, p := range s.Includes {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("relative INCLUDE %q", p)
			}
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
			for _, in := range st.Instructions {
				if c, ok := in.(*Copy); ok && c.From.Kind == FromStage && c.From.Stage >= i {
					t.Fatalf("stage %d copies from stage %d", i, c.From.Stage)
				}
			}
		}
		_ = CheckEmbedded(u)
	})
}
