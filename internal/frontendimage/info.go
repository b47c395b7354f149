// Package frontendimage describes the BuildKit frontend's image: the
// settings baked into it when it is built (make frontend-image).
package frontendimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// InfoPath is where the frontend image keeps its Info.
const InfoPath = "/etc/uni/frontend.json"

// Info is what the frontend image was built with.
type Info struct {
	// DefaultKernel is the digest-pinned reference of the kernel bundle
	// image that `KERNEL linux` means.
	DefaultKernel string `json:"defaultKernel"`
	Version       string `json:"version"`
}

// ReadInfo reads the Info at p strictly.
func ReadInfo(p string) (Info, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return Info{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var i Info
	if err := dec.Decode(&i); err != nil {
		return Info{}, fmt.Errorf("%s: %w", p, err)
	}
	return i, nil
}
