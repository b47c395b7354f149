//go:build unix

package deb

import "syscall"

const noFollow = syscall.O_NOFOLLOW
