package kernel

import (
	"reflect"
	"strings"
	"testing"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

func TestOrderModules(t *testing.T) {
	all := []spec.Module{
		{Name: "app", Depends: []string{"mid_b", "mid_a"}},
		{Name: "mid_a", Depends: []string{"base"}},
		{Name: "mid_b", Depends: []string{"base", "builtin_x"}},
		{Name: "base"},
		{Name: "lonely"},
		{Name: "needs_ghost", Depends: []string{"ghost"}},
		{Name: "cyc_a", Depends: []string{"cyc_b"}},
		{Name: "cyc_b", Depends: []string{"cyc_a"}},
	}
	builtin := []string{"builtin_x", "builtin_y"}
	names := func(mods []spec.Module) []string {
		var out []string
		for _, m := range mods {
			out = append(out, m.Name)
		}
		return out
	}

	got, err := orderModules(all, builtin, []string{"lonely", "app", "builtin-y", "mid_a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lonely", "base", "mid_b", "mid_a", "app"}
	if !reflect.DeepEqual(names(got), want) {
		t.Errorf("order %v, want %v", names(got), want)
	}
	checkDependencyOrder(t, got, builtin)

	if _, err := orderModules(all, builtin, []string{"nope", "needs_ghost"}); err == nil ||
		!strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "ghost (needed by needs_ghost)") {
		t.Errorf("unknown modules: error %v", err)
	}
	if _, err := orderModules(all, builtin, []string{"cyc_a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: error %v", err)
	}
	if got, err := orderModules(all, builtin, nil); err != nil || len(got) != 0 {
		t.Errorf("empty request: %v, %v", got, err)
	}
}

func TestDefaultModulesIsFresh(t *testing.T) {
	a := DefaultModules()
	a[0] = "changed"
	if DefaultModules()[0] == "changed" {
		t.Error("DefaultModules shares its slice between calls")
	}
}
