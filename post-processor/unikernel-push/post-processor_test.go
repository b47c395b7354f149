package push

import (
	"strings"
	"testing"
)

func TestConfigureNeedsRef(t *testing.T) {
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{}); err == nil || !strings.Contains(err.Error(), "ref: must be set") {
		t.Errorf("Configure without ref = %v", err)
	}
	if err := p.Configure(map[string]interface{}{"ref": "127.0.0.1:5000/app:1", "insecure": true}); err != nil {
		t.Errorf("Configure with ref = %v", err)
	}
}
