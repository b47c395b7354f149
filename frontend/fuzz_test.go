package frontend

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert: whatever the Unifile, Convert returns a conversion or an
// error; it never panics (our parser, the keyword stripping, the base
// stage appended, and dockerfile2llb all see the text).
func FuzzConvert(f *testing.F) {
	f.Add([]byte(identityUnifile))
	f.Add([]byte("FROM scratch AS a\nCOPY x /x\nFROM a\nKERNEL linux\nINCLUDE /etc \\\n  /usr\nENTRYPOINT [\"/x\"]\n"))
	f.Add([]byte("ARG B=scratch\nFROM --platform=$BUILDPLATFORM ${B} AS uni-base\nRUN <<EOF\necho hi\nEOF\nFROM uni-base\nMEMORY 64M\nCMD [\"/x\"]\n"))
	if seeds, err := filepath.Glob("../example/*/Unifile"); err == nil {
		for _, p := range seeds {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	opt := testOpt()
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Convert(context.Background(), src, opt)
		if err != nil {
			return
		}
		if c.Stage == nil || c.Unifile == nil {
			t.Fatalf("a conversion without its stage: %+v", c)
		}
		if _, err := c.Layout.Marshal(context.Background()); err != nil {
			t.Fatalf("the assembly step does not marshal: %v", err)
		}
	})
}

// FuzzReadStatus: the assembly step's report is read strictly.
func FuzzReadStatus(f *testing.F) {
	f.Add([]byte(`{"error":{"step":"entrypoint","path":"/x","message":"m"}}`))
	f.Add([]byte(`{"warnings":["w"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadStatus(data)
		if err == nil && st == nil {
			t.Fatal("no status and no error")
		}
	})
}
