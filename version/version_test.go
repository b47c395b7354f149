package version

import "testing"

func TestTagged(t *testing.T) {
	for v, want := range map[string]string{
		"v1.2.3":                               "1.2.3",
		"v0.2.0-rc.1":                          "0.2.0-rc.1",
		"(devel)":                              "",
		"":                                     "",
		"v0.0.0-20261130014700-170e26a3b2c1":   "",
		"v0.1.1-0.20261130014700-170e26a3b2c1": "",
		"v0.1.0+dirty":                         "",
		"v0.0.0-20261130014700-170e26a3b2c1+dirty": "",
	} {
		if got := tagged(v); got != want {
			t.Errorf("tagged(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestVersionOfACheckout(t *testing.T) {
	// A test binary's main module is "(devel)" or a VCS stamp: Base.
	if got := Version(); got != Base {
		t.Errorf("Version() = %q, want %q", got, Base)
	}
}
