// Package configs holds the kernel configuration fragments uni builds its
// own kernels with (uni kernel build, KERNEL linux-mini). Each fragment is a
// list of CONFIG_ lines in the kernel's .config syntax, merged in order over
// the source's tinyconfig; comments say what in the guest needs each option.
package configs

import "embed"

// FS holds the fragments, by file name.
//
//go:embed *.config
var FS embed.FS

// Default names the fragments of linux-mini, in merge order.
func Default() []string { return []string{"linux-mini.config", "cloud.config"} }
