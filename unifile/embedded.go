package unifile

// CheckEmbedded reports the first instruction the embedded engine cannot
// build, in file order: it has no container runtime, so RUN cannot run,
// and it does not download or unpack, so ADD is refused too. BuildKit
// builds both; the parser keeps them for its frontend.
func CheckEmbedded(u *Unifile) error {
	for _, stage := range u.Stages {
		for _, instr := range stage.Instructions {
			switch instr.(type) {
			case *Run:
				return &Error{File: u.Filename, Line: instr.Pos().Line,
					Msg: "RUN needs a container runtime; the embedded engine has none: send the build to a BuildKit daemon with `uni build --builder ADDR` (tcp://host:1234, unix:///run/buildkit/buildkitd.sock, docker-container://NAME), or build with `docker buildx build -f Unifile …`"}
			case *Add:
				return &Error{File: u.Filename, Line: instr.Pos().Line,
					Msg: "ADD is not supported by the embedded engine: use COPY for local files, or build with BuildKit (`uni build --builder ADDR`, or `docker buildx build -f Unifile …`)"}
			}
		}
	}
	return nil
}
