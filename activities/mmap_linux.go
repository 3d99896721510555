package activities

import "syscall"

// mapPopulate faults a window in at once, far cheaper than page by page.
const mapPopulate = syscall.MAP_POPULATE
