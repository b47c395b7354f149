package modprobe

// match reports whether name matches the shell pattern, with the semantics
// modprobe gets from fnmatch(3) without flags: '*' matches any run of bytes
// ('/' included), '?' any one byte, "[...]" a set with ranges and '!' or '^'
// negation, and '\' quotes the next byte.
func match(pattern, name string) bool {
	// Iterative matching with one backtrack point for the last '*', which is
	// enough for fnmatch semantics and never exponential.
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, next, valid := matchClass(pattern, p, name[n]); valid {
					if ok {
						p, n = next, n+1
						continue
					}
				} else if name[n] == '[' { // an unclosed '[' is a literal
					p, n = p+1, n+1
					continue
				}
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == name[n] {
					p, n = p+2, n+1
					continue
				}
			default:
				if pattern[p] == name[n] {
					p, n = p+1, n+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches c against the bracket expression starting at
// pattern[start] ('['). It returns whether c is in the set, the index after
// the closing ']', and whether the expression was well formed.
func matchClass(pattern string, start int, c byte) (matched bool, next int, valid bool) {
	i := start + 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		lo := pattern[i]
		if lo == '\\' && i+1 < len(pattern) {
			i++
			lo = pattern[i]
		}
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			if hi == '\\' && i+3 < len(pattern) {
				i++
				hi = pattern[i+2]
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	return false, 0, false
}
