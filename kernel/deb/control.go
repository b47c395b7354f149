package deb

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Control holds the fields of a package's control file, keyed by the field
// name in canonical case ("Package", "Depends"). Continuation lines are
// joined with "\n".
type Control map[string]string

// Dependency is one entry of a Depends-style field: the first of its
// alternatives, with its version constraint if any.
type Dependency struct {
	Name     string // package name, without an ":arch" qualifier
	Relation string // "=", ">=", "<<" …, or empty
	Version  string
}

// ParseControl reads the first paragraph of a control file.
func ParseControl(r io.Reader) (Control, error) {
	c := Control{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxControlBytes)
	last := ""
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			if len(c) > 0 {
				break
			}
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation without a field", line)
			}
			c[last] += "\n" + strings.TrimSpace(text)
			continue
		}
		key, value, ok := strings.Cut(text, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("control line %d: not a field: %q", line, text)
		}
		last = canonicalField(key)
		c[last] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("control file is empty")
	}
	return c, nil
}

// canonicalField capitalises each dash-separated word, since field names
// are case-insensitive.
func canonicalField(key string) string {
	words := strings.Split(strings.ToLower(key), "-")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, "-")
}

// Get returns a field's value, any case of its name accepted.
func (c Control) Get(field string) string {
	return c[canonicalField(field)]
}

// Depends parses a Depends-style field ("Depends", "Pre-Depends" …),
// keeping the first alternative of each entry.
func (c Control) Depends(field string) []Dependency {
	var deps []Dependency
	for _, entry := range strings.Split(strings.ReplaceAll(c.Get(field), "\n", " "), ",") {
		first, _, _ := strings.Cut(entry, "|")
		first = strings.TrimSpace(first)
		if first == "" {
			continue
		}
		var d Dependency
		name, constraint, hasConstraint := strings.Cut(first, "(")
		d.Name, _, _ = strings.Cut(strings.TrimSpace(name), ":")
		if hasConstraint {
			constraint = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(constraint), ")"))
			// The relation is the leading run of <, >, =.
			i := 0
			for i < len(constraint) && strings.ContainsRune("<>=", rune(constraint[i])) {
				i++
			}
			d.Relation = constraint[:i]
			d.Version = strings.TrimSpace(constraint[i:])
		}
		deps = append(deps, d)
	}
	return deps
}
