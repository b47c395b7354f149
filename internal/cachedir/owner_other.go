//go:build !unix

package cachedir

import "os"

func checkOwner(string, os.FileInfo) error { return nil }
