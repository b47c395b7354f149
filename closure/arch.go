package closure

import (
	"debug/elf"
	"strings"
)

// abi describes where one ELF class/machine keeps its libraries.
type abi struct {
	triplets []string // Debian multiarch tuples, most likely first
	libdir   string   // the lib64/lib32/libx32-style directory, or "lib"
	platform string   // what $PLATFORM expands to
	musl     string   // musl's arch name, as in ld-musl-<arch>.so.1
}

// abiOf returns the library layout for the class, byte order and machine
// of m. Unknown machines still search /lib and /usr/lib.
func abiOf(m *elfInfo) abi {
	le := m.Data == elf.ELFDATA2LSB
	is64 := m.Class == elf.ELFCLASS64
	switch m.Machine {
	case elf.EM_X86_64:
		if !is64 {
			return abi{[]string{"x86_64-linux-gnux32"}, "libx32", "x86_64", "x32"}
		}
		return abi{[]string{"x86_64-linux-gnu"}, "lib64", "x86_64", "x86_64"}
	case elf.EM_386:
		return abi{[]string{"i386-linux-gnu", "i686-linux-gnu"}, "lib32", "i686", "i386"}
	case elf.EM_AARCH64:
		if !le {
			return abi{[]string{"aarch64_be-linux-gnu"}, "lib64", "aarch64_be", "aarch64_be"}
		}
		return abi{[]string{"aarch64-linux-gnu"}, "lib64", "aarch64", "aarch64"}
	case elf.EM_ARM:
		return abi{[]string{"arm-linux-gnueabihf", "arm-linux-gnueabi"}, "lib", "armv7l", "armhf"}
	case elf.EM_RISCV:
		if is64 {
			return abi{[]string{"riscv64-linux-gnu"}, "lib64", "riscv64", "riscv64"}
		}
		return abi{[]string{"riscv32-linux-gnu"}, "lib32", "riscv32", "riscv32"}
	case elf.EM_PPC64:
		if le {
			return abi{[]string{"powerpc64le-linux-gnu"}, "lib64", "powerpc64le", "powerpc64le"}
		}
		return abi{[]string{"powerpc64-linux-gnu"}, "lib64", "powerpc64", "powerpc64"}
	case elf.EM_S390:
		return abi{[]string{"s390x-linux-gnu"}, "lib64", "s390x", "s390x"}
	case elf.EM_LOONGARCH:
		return abi{[]string{"loongarch64-linux-gnu"}, "lib64", "loongarch64", "loongarch64"}
	case elf.EM_MIPS:
		if le {
			return abi{[]string{"mips64el-linux-gnuabi64", "mipsel-linux-gnu"}, "lib64", "mips", "mipsel"}
		}
		return abi{[]string{"mips64-linux-gnuabi64", "mips-linux-gnu"}, "lib64", "mips", "mips"}
	}
	return abi{libdir: "lib", platform: strings.ToLower(strings.TrimPrefix(m.Machine.String(), "EM_"))}
}

// defaultDirs are the directories ld.so tries last: the multiarch
// directories of the machine, its lib64-style directory, then /lib and
// /usr/lib. A library of another ABI found in one of them is skipped, so
// listing more than one distribution's layout is harmless.
func (a abi) defaultDirs() []string {
	var dirs []string
	for _, t := range a.triplets {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if a.libdir != "lib" {
		dirs = append(dirs, "/"+a.libdir, "/usr/"+a.libdir)
	}
	return append(dirs, "/lib", "/usr/lib")
}

// muslDefaultDirs is musl's built-in path when /etc/ld-musl-<arch>.path is absent.
func muslDefaultDirs() []string { return []string{"/lib", "/usr/local/lib", "/usr/lib"} }

// isMusl reports whether interp is musl's dynamic linker.
func isMusl(interp string) bool {
	base := interp[strings.LastIndexByte(interp, '/')+1:]
	return strings.HasPrefix(base, "ld-musl-")
}
