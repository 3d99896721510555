package workflows

// chunkConcurrency is how many of its URLs each chunk fetches at once when
// chunks of chunkSize URLs (the last one of a run may be shorter) share
// maxInFlight: the value under which the run's urls would be done soonest
// if every request took as long as any other, as the engine admits chunks
// (in order, while their fetches fit in maxInFlight). A share that leaves
// a chunk's last wave half empty, or a slot too few for the last chunk
// that would fit, is thereby never chosen. Of equally fast shares it takes
// the one that runs closest to sharers chunks at once (a few chunks
// smooth each other's ends; many add heartbeats), then the larger.
//
// It is pure and cheap (a chunkSize-long search over one run's chunks):
// workflow code calls it.
func chunkConcurrency(maxInFlight, chunkSize, urls, sharers int) int {
	if chunkSize <= 1 || maxInFlight <= 1 || urls <= 1 {
		return 1
	}
	best, bestTime, bestOff := 1, -1, 0
	for conc := 1; conc <= min(chunkSize, maxInFlight); conc++ {
		t := runTime(maxInFlight, chunkSize, urls, conc)
		// How far the chunks running at once are from sharers.
		off := abs(min(maxInFlight/conc, (urls+chunkSize-1)/chunkSize) - sharers)
		if bestTime < 0 || t < bestTime || t == bestTime && off <= bestOff {
			best, bestTime, bestOff = conc, t, off
		}
	}
	return best
}

// runTime is how many request times a run of urls in chunks of chunkSize
// takes when each chunk fetches conc URLs at once and chunks start in
// order while their fetches fit in maxInFlight: the engine's admission,
// with every request taking one unit.
func runTime(maxInFlight, chunkSize, urls, conc int) int {
	type running struct{ end, w int }
	var run []running // few: at most maxInFlight/conc
	now, slots := 0, 0
	for first := 0; first < urls; first += chunkSize {
		n := min(chunkSize, urls-first)
		w := min(conc, n)
		for slots+w > maxInFlight {
			// Wait for the running chunk that ends first.
			i := 0
			for j := range run {
				if run[j].end < run[i].end {
					i = j
				}
			}
			now = max(now, run[i].end)
			slots -= run[i].w
			run = append(run[:i], run[i+1:]...)
		}
		slots += w
		run = append(run, running{end: now + (n+w-1)/w, w: w})
	}
	end := now
	for _, r := range run {
		end = max(end, r.end)
	}
	return end
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
