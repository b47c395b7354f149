package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/uniforge/packer-plugin-unikernel/spec"
)

// superblockSize is how much of a filesystem its digest covers.
const superblockSize = spec.SuperblockBytes

// rootPollInterval is how often the block devices are looked at again while
// the rootfs has not appeared.
const rootPollInterval = 10 * time.Millisecond

// waitForRootDevice returns the /dev path of the block device (a whole disk
// or a partition) whose first 4096 bytes have the given digest, waiting up to
// timeout for it to appear: devices appear as their drivers probe them, and
// partitions a little after their disk. Each device is read once.
func waitForRootDevice(digest string, timeout time.Duration) (string, error) {
	want, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(want) != 2*sha256.Size {
		return "", fmt.Errorf("rootfsSuperblockDigest %q: want sha256:<64 hex digits>", digest)
	}
	checked := map[string]bool{}
	deadline := time.Now().Add(timeout)
	for {
		names, _ := blockDevices()
		for _, name := range names {
			if checked[name] {
				continue
			}
			got, err := superblockDigest("/dev/" + name)
			if err != nil {
				continue // not readable yet (or an empty drive): look again later
			}
			checked[name] = true
			if got == want {
				return "/dev/" + name, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no block device holds the rootfs (superblock %s) after %v; looked at %s",
				digest, timeout, strings.Join(sortedKeys(checked), ", "))
		}
		time.Sleep(rootPollInterval)
	}
}

// blockDevices lists the kernel's block devices by name (vda, vda3, …).
func blockDevices() ([]string, error) {
	entries, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func superblockDigest(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, superblockSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", err
	}
	// A filesystem smaller than 4096 bytes is digested as it is.
	sum := sha256.Sum256(buf[:n])
	return hex.EncodeToString(sum[:]), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
