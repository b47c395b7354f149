package unikernel

import (
	"strings"
	"testing"
	"time"
)

func TestPrepareDefaults(t *testing.T) {
	var c Config
	err := c.Prepare(map[string]interface{}{
		"context":           "ctx",
		"packer_build_name": "app",
		"ready":             map[string]interface{}{"type": "http", "port": 8080},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.OutputDirectory != "output-app" {
		t.Errorf("output_directory = %q, want output-app", c.OutputDirectory)
	}
	if c.Ready.Path != "/" || c.Ready.Status != 200 || c.Ready.Timeout != 2*time.Minute {
		t.Errorf("ready defaults = %+v", c.Ready)
	}
}

func TestPrepareDuration(t *testing.T) {
	var c Config
	err := c.Prepare(map[string]interface{}{
		"layout": "l",
		"ready":  map[string]interface{}{"type": "exit", "exit_status": 3, "timeout": "45s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ready.Timeout != 45*time.Second || c.Ready.ExitStatus != 3 {
		t.Errorf("ready = %+v", c.Ready)
	}
}

// Every bad config is refused with an error that names the field.
func TestPrepareErrorsNameTheField(t *testing.T) {
	ok := map[string]interface{}{"type": "exit"}
	for _, tc := range []struct {
		name  string
		raw   map[string]interface{}
		field string
	}{
		{"no source", map[string]interface{}{"ready": ok}, "exactly one of unifile"},
		{"two sources", map[string]interface{}{"context": "c", "ref": "r", "ready": ok}, "exactly one of unifile"},
		{"disk with layout", map[string]interface{}{"layout": "l", "disk": true, "ready": ok}, "disk:"},
		{"no ready type", map[string]interface{}{"layout": "l"}, "ready.type:"},
		{"bad ready type", map[string]interface{}{"layout": "l", "ready": map[string]interface{}{"type": "htp"}}, `ready.type: "htp"`},
		{"http without port", map[string]interface{}{"layout": "l", "ready": map[string]interface{}{"type": "http"}}, "ready.port:"},
		{"tcp port too big", map[string]interface{}{"layout": "l", "ready": map[string]interface{}{"type": "tcp", "port": 70000}}, "ready.port: 70000"},
		{"console without line", map[string]interface{}{"layout": "l", "ready": map[string]interface{}{"type": "console"}}, "ready.line:"},
		{"negative timeout", map[string]interface{}{"layout": "l", "ready": map[string]interface{}{"type": "exit", "timeout": "-1s"}}, "ready.timeout:"},
		{"unknown key", map[string]interface{}{"layout": "l", "ready": ok, "unifle": "x"}, "unifle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			err := c.Prepare(tc.raw)
			if err == nil {
				t.Fatalf("Prepare(%v) succeeded", tc.raw)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}
