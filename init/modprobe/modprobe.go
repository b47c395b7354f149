// Package modprobe loads the kernel modules the guest's devices need, from
// the module index in the initrd: the modules named "always", then every
// module whose alias patterns match a device's modalias (coldplug), each
// after its dependencies, independent ones in parallel.
package modprobe

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// Loader loads modules of one index, each at most once, whichever goroutine
// asks first.
type Loader struct {
	root    string // directory the index's paths are relative to
	modules map[string]*spec.Module
	ordered []*spec.Module // index order, for reproducible matching
	insert  func(path string) error
	trace   func(name string, took time.Duration)

	mu    sync.Mutex
	loads map[string]*load
}

// load is the outcome of loading one module, shared by everyone who waits.
type load struct {
	done chan struct{}
	err  error
}

// Option changes a Loader.
type Option func(*Loader)

// WithInsert replaces finit_module, so that the ordering logic can be tested
// without a kernel.
func WithInsert(insert func(path string) error) Option {
	return func(l *Loader) { l.insert = insert }
}

// WithTrace has trace called after each module is inserted, with how long
// the kernel took: the boot-time budget is spent here.
func WithTrace(trace func(name string, took time.Duration)) Option {
	return func(l *Loader) { l.trace = trace }
}

// NormalizeName spells a module name as the kernel does, with '_' for '-'.
func NormalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// New checks idx (every dependency present, no cycles) and returns a Loader
// that opens module files below root.
func New(idx *spec.ModuleIndex, root string, opts ...Option) (*Loader, error) {
	l := &Loader{
		root:    root,
		modules: map[string]*spec.Module{},
		insert:  finitModule,
		loads:   map[string]*load{},
	}
	for i := range idx.Modules {
		m := &idx.Modules[i]
		l.modules[NormalizeName(m.Name)] = m
		l.ordered = append(l.ordered, m)
	}
	for _, opt := range opts {
		opt(l)
	}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		m, ok := l.modules[name]
		if !ok {
			return fmt.Errorf("module index: %s depends on %s, which is not in the index", from, name)
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("module index: dependency cycle through %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range m.Depends {
			if err := visit(NormalizeName(d), name); err != nil {
				return err
			}
		}
		state[name] = 2
		return nil
	}
	for name := range l.modules {
		if err := visit(name, name); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Load loads the named module after its dependencies. A module the kernel
// already has (EEXIST) counts as loaded.
func (l *Loader) Load(name string) error {
	name = NormalizeName(name)
	m, ok := l.modules[name]
	if !ok {
		return fmt.Errorf("module %s: not in the module index", name)
	}
	l.mu.Lock()
	if ld, ok := l.loads[name]; ok {
		l.mu.Unlock()
		<-ld.done
		return ld.err
	}
	ld := &load{done: make(chan struct{})}
	l.loads[name] = ld
	l.mu.Unlock()

	ld.err = l.loadAfterDeps(m)
	close(ld.done)
	return ld.err
}

// Loaded reports whether name has been asked for already.
func (l *Loader) Loaded(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.loads[NormalizeName(name)]
	return ok
}

func (l *Loader) loadAfterDeps(m *spec.Module) error {
	if err := l.LoadAll(m.Depends); err != nil {
		return fmt.Errorf("module %s: %w", m.Name, err)
	}
	p := path.Join(l.root, path.Clean("/"+m.Path))
	start := time.Now()
	if err := l.insert(p); err != nil {
		return fmt.Errorf("module %s (%s): %w", m.Name, p, err)
	}
	if l.trace != nil {
		l.trace(m.Name, time.Since(start))
	}
	return nil
}

// LoadAll loads the named modules in parallel and returns their errors joined.
func (l *Loader) LoadAll(names []string) error {
	switch len(names) {
	case 0:
		return nil
	case 1:
		return l.Load(names[0])
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Load(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Matching returns the names of the modules with an alias pattern that
// matches modalias, in index order.
func (l *Loader) Matching(modalias string) []string {
	var out []string
	for _, m := range l.ordered {
		for _, a := range m.Aliases {
			if match(a, modalias) {
				out = append(out, NormalizeName(m.Name))
				break
			}
		}
	}
	return out
}

// finitModule inserts the module file at p into the kernel.
func finitModule(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
