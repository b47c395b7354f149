package unifile

import (
	"bytes"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// StripUnikernelKeywords returns the Unifile as a Dockerfile that BuildKit's
// frontend (dockerfile2llb) accepts: each KERNEL, MEMORY, CPUS and INCLUDE
// instruction, continuation lines included, becomes empty lines. Every
// other byte stays where it was, so BuildKit's line numbers are the
// Unifile's. Parse reads the keywords; BuildKit must not see them.
func StripUnikernelKeywords(src []byte) ([]byte, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		p := &parseState{file: DefaultFilename}
		return nil, p.syntaxError(err)
	}
	var blank [][2]int // first and last line, counting from 1
	for _, n := range res.AST.Children {
		switch strings.ToUpper(n.Value) {
		case "KERNEL", "MEMORY", "CPUS", "INCLUDE":
			blank = append(blank, [2]int{n.StartLine, n.EndLine})
		}
	}
	if len(blank) == 0 {
		return src, nil
	}
	lines := bytes.SplitAfter(src, []byte("\n"))
	for _, r := range blank {
		for i := r[0] - 1; i < r[1] && i < len(lines); i++ {
			lines[i] = lineEnding(lines[i])
		}
	}
	return bytes.Join(lines, nil), nil
}

// lineEnding keeps only the end of a line ("\r\n", "\n" or nothing).
func lineEnding(line []byte) []byte {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return []byte("\r\n")
	case bytes.HasSuffix(line, []byte("\n")):
		return []byte("\n")
	}
	return nil
}
