package convert

import (
	"strings"
	"testing"
)

func TestConfigureErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		raw   map[string]interface{}
		field string
	}{
		{map[string]interface{}{}, "format: must be set"},
		{map[string]interface{}{"format": "vmdkk"}, "format:"},
		{map[string]interface{}{"format": "vhd", "compress": true}, "compress: format vhd is not compressed"},
		{map[string]interface{}{"format": "qcow2", "outptu": "x"}, "outptu"},
	} {
		var p PostProcessor
		err := p.Configure(tc.raw)
		if err == nil {
			t.Errorf("Configure(%v) succeeded", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Configure(%v) = %q, does not name %q", tc.raw, err, tc.field)
		}
	}
}

func TestConfigure(t *testing.T) {
	var p PostProcessor
	if err := p.Configure(map[string]interface{}{"format": "qcow2", "compress": true}); err != nil {
		t.Fatal(err)
	}
	if p.format.Name != "qcow2" || p.format.Ext == "" {
		t.Errorf("format = %+v", p.format)
	}
}
