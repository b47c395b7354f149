package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/acctest"

	"github.com/uniforge/packer-plugin-unikernel/builder/unikernel"
	"github.com/uniforge/packer-plugin-unikernel/internal/testtool"
)

// The SDK's acceptance harness (acctest.TestPlugin) runs `packer build
// --machine-readable` with PACKER_LOG; the check reads the artifact that
// packer core received over RPC from the log: the builder id, and a file
// list that is exactly the layout's files.
func TestAccArtifactListsTheLayout(t *testing.T) {
	testtool.NeedVM(t)
	_, env := packerEnv(t)
	// acctest runs packer with this process's environment.
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PACKER_") || k == "CHECKPOINT_DISABLE" {
			t.Setenv(k, v)
		}
	}
	t.Setenv(acctest.TestEnvVar, "1") // the harness skips without it; make test always runs it
	ctxDir, work := helloContext(t), t.TempDir()
	t.Chdir(work) // the harness writes its template and log into the working directory
	out := filepath.Join(work, "out")
	tmpl := filepath.Join(work, "tmpl.pkr.hcl")
	writeTemplate(t, tmpl, `context = "`+ctxDir+`"
  output_directory = "`+out+`"
  ready {
    type = "console"
    line = "listening on :8080"
  }`, "")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	acctest.TestPlugin(t, &acctest.PluginTestCase{
		Name:     "unikernel_artifact",
		Type:     "unikernel",
		Template: string(b),
		Check: func(cmd *exec.Cmd, logfile string) error {
			log, err := os.ReadFile(logfile)
			if err != nil {
				return err
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				return fmt.Errorf("packer build exited %d", code)
			}
			id := regexp.MustCompile(`artifact \[\]string\{"0", "builder-id", "([^"]*)"\}`).FindSubmatch(log)
			if id == nil || string(id[1]) != unikernel.BuilderID {
				return fmt.Errorf("artifact builder-id %q, want %q", id, unikernel.BuilderID)
			}
			var files []string
			for _, m := range regexp.MustCompile(`artifact \[\]string\{"0", "file", "\d+", "([^"]*)"\}`).FindAllSubmatch(log, -1) {
				files = append(files, string(m[1]))
			}
			ents, err := os.ReadDir(out)
			if err != nil {
				return err
			}
			var want []string
			for _, e := range ents {
				want = append(want, filepath.Join(out, e.Name()))
			}
			if !slices.Equal(files, want) {
				return fmt.Errorf("artifact files %v, want the layout's %v", files, want)
			}
			return nil
		},
	})
}
