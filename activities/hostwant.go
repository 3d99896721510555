package activities

import "github.com/batchfetch/batchfetch/politeness"

// wanting counts the URLs not yet taken of each host as waiting
// (politeness.HostLimits.Want: a worker the host's rate holds back is
// known to the batch's other workers while it has some), and returns
// what takes back those still not taken when the chunk stops starting
// URLs; the chunk takes back each URL it takes.
func (c *chunkRun) wanting(limits *politeness.HostLimits, batch string, hosts []string, taken []bool) (done func()) {
	count := func(sign int) {
		n := map[string]int{}
		for i, h := range hosts {
			if !taken[i] {
				n[h]++
			}
		}
		for h, k := range n {
			limits.Want(batch, h, sign*k)
		}
	}
	count(1)
	return func() { count(-1) }
}

// wanting counts the gate's URL as waiting for its host while it waits
// for another request (a retry), and returns what takes it back.
func (g *hostGate) wanting() (done func()) {
	g.limits.Want(g.batch, g.host, 1)
	return func() { g.limits.Want(g.batch, g.host, -1) }
}
