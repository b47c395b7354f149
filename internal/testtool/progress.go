package testtool

import (
	"regexp"
	"strconv"
	"strings"
)

// Vertex is one step of a BuildKit build as its plain progress
// (`--progress=plain`) shows it.
type Vertex struct {
	ID     int      // the #N of its lines
	Name   string   // "[2/2] RUN echo hi > /hello", "assemble unikernel", …
	Cached bool     // "#N CACHED": taken from the cache, not run
	Done   bool     // "#N DONE 0.3s"
	Error  string   // "#N ERROR: …", without the prefix
	Logs   []string // what the step printed ("#N 0.317 text"), without the time
	Status []string // BuildKit's own lines for it (resolve, extracting, …)
}

// Progress is a build's vertices in the order they first appear.
type Progress []Vertex

var (
	progressLine = regexp.MustCompile(`^#(0|[1-9]\d{0,8}) (.*)$`) // ids as BuildKit prints them
	progressLog  = regexp.MustCompile(`^\d+\.\d+ (.*)$`)
)

// ParseProgress reads BuildKit's plain progress (from buildctl or buildx,
// with other lines mixed in) into its vertices.
func ParseProgress(plain string) Progress {
	var p Progress
	index := map[int]int{}
	for line := range strings.SplitSeq(plain, "\n") {
		m := progressLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		id, _ := strconv.Atoi(m[1])
		rest := m[2]
		i, seen := index[id]
		if !seen {
			index[id] = len(p)
			p = append(p, Vertex{ID: id, Name: rest})
			continue
		}
		v := &p[i]
		switch {
		case rest == v.Name:
			// The name again: plain progress repeats it when steps interleave.
		case rest == "CACHED":
			v.Cached = true
		case strings.HasPrefix(rest, "DONE"):
			v.Done = true
		case strings.HasPrefix(rest, "ERROR: "):
			v.Error = strings.TrimPrefix(rest, "ERROR: ")
		default:
			if l := progressLog.FindStringSubmatch(rest); l != nil {
				v.Logs = append(v.Logs, l[1])
			} else {
				v.Status = append(v.Status, rest)
			}
		}
	}
	return p
}

// Find returns the first vertex whose name contains substr.
func (p Progress) Find(substr string) (Vertex, bool) {
	for _, v := range p {
		if strings.Contains(v.Name, substr) {
			return v, true
		}
	}
	return Vertex{}, false
}
