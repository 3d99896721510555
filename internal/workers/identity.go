package workers

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/batchfetch/batchfetch/blobstore"
)

// A fetch worker polls with the identity
// "pid@host@store=ID@blobs=LOCATION@fetch-slots=N". DescribeTaskQueue
// lists each poller's identity, so whoever starts a batch can add up the
// fetch slots of the workers polling its task queue, and learn which blob
// store they use before it puts anything in its own.
const (
	storeMark      = "@store="
	locationMark   = "@blobs="
	fetchSlotsMark = "@fetch-slots="
)

// maxLocationInIdentity bounds the store's location in the identity (the
// server caps an identity at 1,000 bytes); a longer one is left out.
const maxLocationInIdentity = 300

// fetchIdentity is the identity a fetch worker polls with: the SDK's
// default (process ID and host name; "pid/instance@host" for a named
// instance), its blob store's identity and
// location (blobstore.Redacted: without any user or password a URL
// holds), and its fetch slots.
func fetchIdentity(slots int, instance, storeID, location string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	store := ""
	if storeID != "" {
		store = storeMark + storeID
		location = blobstore.Redacted(location)
		if len(location) <= maxLocationInIdentity && !strings.Contains(location, fetchSlotsMark) {
			store += locationMark + location
		}
	}
	pid := strconv.Itoa(os.Getpid())
	if instance != "" && !strings.Contains(instance, "@") {
		pid += "/" + instance
	}
	return fmt.Sprintf("%s@%s%s%s%d", pid, host, store, fetchSlotsMark, slots)
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

// StoreOf reads the blob store's identity and location (location may be
// empty: too long to say) from a fetch worker's identity; ok is false when
// the identity does not say (a worker of an earlier release, a store
// without identity, or another program).
func StoreOf(identity string) (id, location string, ok bool) {
	end := strings.LastIndex(identity, fetchSlotsMark)
	i := strings.Index(identity, storeMark)
	if end < 0 || i < 0 || i > end {
		return "", "", false
	}
	rest := identity[i+len(storeMark) : end]
	id, location, _ = strings.Cut(rest, locationMark)
	if id == "" {
		return "", "", false
	}
	return id, location, true
}
