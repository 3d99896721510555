package crashtest

import (
	"os/exec"
	"syscall"
)

// dieWithTest kills cmd if the test binary dies first (a timeout's panic
// skips the cleanups): no server or worker outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
