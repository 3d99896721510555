package workers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// fetchSlotsMark ends a fetch worker's identity: "pid@host@fetch-slots=N".
// DescribeTaskQueue lists each poller's identity, so whoever starts a batch
// can add up the fetch slots of the workers polling its task queue.
const fetchSlotsMark = "@fetch-slots="

// fetchIdentity is the identity a fetch worker polls with: the SDK's
// default (process ID and host name) and its fetch slots.
func fetchIdentity(slots int) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("%d@%s%s%d", os.Getpid(), host, fetchSlotsMark, slots)
}

// FetchSlotsOf reads the fetch slots from a poller's identity; ok is false
// when the identity does not say (a worker of an earlier release, or
// another program).
func FetchSlotsOf(identity string) (slots int, ok bool) {
	i := strings.LastIndex(identity, fetchSlotsMark)
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(identity[i+len(fetchSlotsMark):])
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
