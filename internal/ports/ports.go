// Package ports tells where the system takes the ports of outgoing
// connections, so that a port picked for a server is not one of them.
package ports

import (
	"os"
	"strconv"
	"strings"
)

// EphemeralLow is the lowest port of the system's ephemeral range (0
// when unknown): a port at or above it may become any outgoing
// connection's source port between the moment it is found free and the
// moment a server binds it.
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}
