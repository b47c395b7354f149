package unifile

// ParseMemory reads a memory size as MEMORY takes it (128M, 1G, 512MiB)
// and checks the same bounds, for command-line flags such as --memory.
func ParseMemory(s string) (int64, error) { return parseMemory(s) }
