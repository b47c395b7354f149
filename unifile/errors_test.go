package unifile

import (
	"errors"
	"strings"
	"testing"
)

// TestErrors checks the whole message of each error, its line included.
func TestErrors(t *testing.T) {
	const end = "\nCMD [\"/a\"]\n"
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "Unifile:1: no instructions: a Unifile needs at least FROM and ENTRYPOINT or CMD"},
		{"only comments", "# hi\n\n# there\n", "Unifile:3: no instructions: a Unifile needs at least FROM and ENTRYPOINT or CMD"},
		{"only ARG", "ARG A=1\nARG B\n", "Unifile:2: no FROM: a Unifile needs at least one stage"},
		{"unknown", "FROM scratch\nFOO bar" + end, "Unifile:2: unknown instruction FOO"},
		{"unknown lower case", "FROM scratch\n\nfrobnicate" + end, "Unifile:3: unknown instruction FROBNICATE"},
		{"unknown before FROM", "BAR\nFROM scratch" + end, "Unifile:1: unknown instruction BAR"},
		{"before FROM", "ENV A=1\nFROM scratch" + end, "Unifile:1: ENV before the first FROM: only ARG may come before FROM"},
		{"no cmd", "FROM scratch\nENV A=1\n", "Unifile:1: no ENTRYPOINT or CMD in the last stage: nothing to run"},
		{"no cmd in last", "FROM scratch AS a\nCMD [\"/a\"]\nFROM scratch\nCOPY --from=a / /\n", "Unifile:3: no ENTRYPOINT or CMD in the last stage: nothing to run"},
		{"empty entrypoint", "FROM scratch\nENTRYPOINT []\n", "Unifile:1: no ENTRYPOINT or CMD in the last stage: nothing to run"},
		{"empty program", "FROM scratch\nENTRYPOINT [\"\"]\n", "Unifile:2: the program to run (the first word of ENTRYPOINT, else CMD) is empty"},
		{"shell entrypoint", "FROM scratch\n\n\n\n\n\nENTRYPOINT node hi.js\n",
			`Unifile:7: ENTRYPOINT in shell form needs a shell, and a unikernel has none: write it as JSON, e.g. ENTRYPOINT ["node", "hi.js"]`},
		{"shell cmd", "FROM scratch\nCMD /app --flag\n",
			`Unifile:2: CMD in shell form needs a shell, and a unikernel has none: write it as JSON, e.g. CMD ["/app", "--flag"]`},
		{"bad json", "FROM scratch\nCMD [\"a\", 1]\n", "Unifile:2: when using JSON array syntax, arrays must be comprised of strings only"},
		{"memory small", "FROM scratch\nMEMORY 16M" + end, "Unifile:2: MEMORY 16M is out of range: the least is 32 MiB"},
		{"memory big", "FROM scratch\nMEMORY 65G" + end, "Unifile:2: MEMORY 65G is out of range: the most is 64 GiB"},
		{"memory overflow", "FROM scratch\nMEMORY 99999999999999999999T" + end, "Unifile:2: MEMORY 99999999999999999999T is out of range: the most is 64 GiB"},
		{"memory unit", "FROM scratch\nMEMORY 1.5G" + end, `Unifile:2: MEMORY "1.5G": want a whole number with an optional unit, e.g. 128M, 1G, 512MiB`},
		{"memory not MiB", "FROM scratch\nMEMORY 33554433" + end, "Unifile:2: MEMORY 33554433 is not a whole number of MiB"},
		{"memory none", "FROM scratch\nMEMORY" + end, "Unifile:2: MEMORY needs exactly one argument"},
		{"cpus zero", "FROM scratch\nCPUS 0" + end, "Unifile:2: CPUS 0 is out of range: a unikernel needs at least 1 CPU"},
		{"cpus 65", "FROM scratch\nCPUS 65" + end, "Unifile:2: CPUS 65 is out of range: the most is 64"},
		{"cpus two", "FROM scratch\nCPUS 1 2" + end, "Unifile:2: CPUS needs exactly one argument"},
		{"kernel comment", "FROM scratch\nKERNEL linux # the default" + end, "Unifile:2: KERNEL needs exactly one argument (a # comment must stand on its own line)"},
		{"kernel flag", "FROM scratch\nKERNEL --x=1 linux" + end, "Unifile:2: KERNEL takes no flags"},
		{"include relative", "FROM scratch\nINCLUDE etc/ssl" + end, `Unifile:2: INCLUDE "etc/ssl": must be an absolute path`},
		{"include none", "FROM scratch\nINCLUDE" + end, "Unifile:2: INCLUDE needs at least one absolute path"},
		{"kernel not last", "FROM scratch AS a\nKERNEL linux\nFROM scratch" + end, "Unifile:2: KERNEL is only allowed in the last stage, the one that becomes the unikernel"},
		{"memory not last", "FROM scratch AS a\nCOPY a b\nMEMORY 1G\nCPUS 2\nFROM a" + end, "Unifile:3: MEMORY is only allowed in the last stage, the one that becomes the unikernel"},
		{"expose zero", "FROM scratch\nEXPOSE 0" + end, `Unifile:2: EXPOSE 0: port "0" must be a number from 1 to 65535`},
		{"expose big", "FROM scratch\nEXPOSE 65536/udp" + end, `Unifile:2: EXPOSE 65536/udp: port "65536" must be a number from 1 to 65535`},
		{"expose proto", "FROM scratch\nEXPOSE 80/sctp" + end, "Unifile:2: EXPOSE 80/sctp: protocol must be tcp or udp"},
		{"expose range", "FROM scratch\nEXPOSE 90-80" + end, "Unifile:2: EXPOSE 90-80: the range ends before it starts"},
		{"expose empty", "FROM scratch\nEXPOSE" + end, "Unifile:2: EXPOSE needs at least one port, e.g. EXPOSE 8080"},
		{"user empty group", "FROM scratch\nUSER 1000:" + end, `Unifile:2: USER: user "1000:": want uid[:gid] or name[:group]`},
		{"workdir two", "FROM scratch\nWORKDIR" + end, "Unifile:2: WORKDIR needs exactly one argument"},
		{"workdir empty", "FROM scratch\nARG E\nWORKDIR $E" + end, "Unifile:3: WORKDIR: the argument is empty"},
		{"env empty", "FROM scratch\nENV" + end, "Unifile:2: ENV needs at least one KEY=value"},
		{"copy one arg", "FROM scratch\nCOPY a" + end, "Unifile:2: COPY needs at least one source and a destination"},
		{"copy url", "FROM scratch\nCOPY https://example.com/x /x" + end, "Unifile:2: COPY https://example.com/x: URLs are not supported; put the file in the build context"},
		{"copy flag", "FROM scratch\nCOPY --parents a b" + end, "Unifile:2: COPY: unknown flag --parents"},
		{"copy flag no value", "FROM scratch\nCOPY --from a b" + end, "Unifile:2: COPY: flag --from needs a value (--from=…)"},
		{"copy chmod", "FROM scratch\nCOPY --chmod=u+x a b" + end, "Unifile:2: COPY --chmod=u+x: want an octal mode such as 0755"},
		{"copy chmod big", "FROM scratch\nCOPY --chmod=17777 a b" + end, "Unifile:2: COPY --chmod=17777: want an octal mode such as 0755"},
		{"copy from self", "FROM scratch AS me\nCOPY --from=me a b" + end, "Unifile:2: COPY --from=me: a stage cannot copy from itself"},
		{"copy from later", "FROM scratch\nCOPY --from=later a b\nFROM scratch AS later" + end, "Unifile:2: COPY --from=later: that stage comes later; copy only from earlier stages"},
		{"copy from index", "FROM scratch\nCOPY --from=0 a b" + end, "Unifile:2: COPY --from=0: there is no stage 0 before this one (stage 0)"},
		{"copy heredoc dest", "FROM scratch\nCOPY a <<EOF\nx\nEOF" + end, "Unifile:2: COPY: the destination cannot be a heredoc"},
		{"from args", "FROM a b" + end, "Unifile:1: FROM needs an image, scratch or host, and optionally AS name"},
		{"from comment", "FROM scratch # base" + end, "Unifile:1: FROM needs an image, scratch or host, and optionally AS name (a # comment must stand on its own line)"},
		{"from bad ref", "FROM Not/Valid:x" + end, `Unifile:1: FROM "Not/Valid:x": not an image reference, an earlier stage, scratch or host: could not parse reference: Not/Valid:x`},
		{"from later", "FROM b AS a\nFROM scratch AS b" + end, "Unifile:1: FROM b: that stage comes later; a stage can only be built on an earlier one"},
		{"stage name", "FROM scratch AS 1x" + end, "Unifile:1: FROM … AS 1x: a stage name starts with a letter and has only letters, digits, '-', '_' and '.', and is not scratch or host"},
		{"stage dup", "FROM scratch AS a\nFROM scratch AS A" + end, "Unifile:2: FROM … AS a: a stage of that name already exists"},
		{"from flag", "FROM --nope=1 scratch" + end, "Unifile:1: FROM: unknown flag --nope"},
		{"expansion error", "FROM scratch\nWORKDIR ${NOPE:?must be set}" + end, `Unifile:2: WORKDIR: failed to process "${NOPE:?must be set}": NOPE: must be set`},
		{"unterminated heredoc", "FROM scratch\nCOPY <<EOF /x\nline\n", "Unifile:2: unterminated heredoc"},
		{"bad escape directive", "# escape=x\nFROM scratch" + end, "Unifile:1: invalid escape token 'x' does not match ` or \\"},
		// Lines count from the start of an instruction, after continuations and heredocs.
		{"after continuation", "FROM scratch\nENV A=1 \\\n  B=2 \\\n  C=3\nCOPY \\\n  a\nCMD [\"/a\"]\n", "Unifile:5: COPY needs at least one source and a destination"},
		{"after heredoc", "FROM scratch\nCOPY <<EOF /x\n1\n2\n3\nEOF\nMEMORY 1\nCMD [\"/a\"]\n", "Unifile:7: MEMORY 1 is out of range: the least is 32 MiB"},
		{"after comments in continuation", "FROM scratch\nRUN a \\\n# note\n  && b\nFOO\n" + end, "Unifile:5: unknown instruction FOO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src), Options{})
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error is %T, not *Error", err)
			}
		})
	}
}

func TestErrorFilename(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM scratch\nNOPE\n"), Options{Filename: "examples/node/Unifile"})
	var e *Error
	if !errors.As(err, &e) || e.File != "examples/node/Unifile" || e.Line != 2 || e.Msg != "unknown instruction NOPE" {
		t.Errorf("error = %#v", err)
	}
}

func TestImageBaseMayBringTheEntrypoint(t *testing.T) {
	for _, src := range []string{
		"FROM registry.example/app:1\nUSER app\n",
		"FROM registry.example/app:1 AS base\nFROM base\nENV A=1\n",
	} {
		if _, err := Parse(strings.NewReader(src), Options{}); err != nil {
			t.Errorf("%q: %v (the base image may have an ENTRYPOINT)", src, err)
		}
	}
}
