package unifile

import "strings"

// vars is an ordered set of variables: setting a name again replaces its
// value where it stands, as Docker does for ENV. It serves both as the
// image's Env and as the variables expansion sees (ARG and ENV together,
// the last definition winning). It implements shell.EnvGetter.
type vars struct {
	names  []string
	values map[string]string
}

func newVars() *vars { return &vars{values: map[string]string{}} }

func (v *vars) set(name, value string) {
	if _, ok := v.values[name]; !ok {
		v.names = append(v.names, name)
	}
	v.values[name] = value
}

// Get and Keys make vars a shell.EnvGetter.
func (v *vars) Get(name string) (string, bool) {
	value, ok := v.values[name]
	return value, ok
}

func (v *vars) Keys() []string { return v.names }

func (v *vars) clone() *vars {
	c := &vars{names: append([]string(nil), v.names...), values: make(map[string]string, len(v.values))}
	for k, val := range v.values {
		c.values[k] = val
	}
	return c
}

// list returns KEY=value lines in order.
func (v *vars) list() []string {
	if len(v.names) == 0 {
		return nil
	}
	out := make([]string, len(v.names))
	for i, name := range v.names {
		out[i] = name + "=" + v.values[name]
	}
	return out
}

// varsFromList is the inverse of list.
func varsFromList(list []string) *vars {
	v := newVars()
	for _, kv := range list {
		name, value, _ := strings.Cut(kv, "=")
		v.set(name, value)
	}
	return v
}
