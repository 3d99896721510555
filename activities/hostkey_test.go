package activities

import "testing"

// TestHostOfOneHostOneKey: every spelling of one host is one key (so
// one rule and one pause), and different hosts stay apart.
func TestHostOfOneHostOneKey(t *testing.T) {
	for _, same := range [][]string{
		{"http://example.com/a", "http://EXAMPLE.com:8080/b", "https://example.com./c", "http://Example.COM.:443/"},
		{"http://127.0.1.5/", "http://[::ffff:127.0.1.5]/", "http://[::FFFF:7f00:105]:81/", "http://127.0.1.5./"},
		{"http://127.0.0.1/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.01/", "http://127.1/", "http://127.0.1/"},
		{"http://[::1]/", "http://[0:0:0:0:0:0:0:1]:8080/", "http://[0::1]/"},
		{"http://bücher.example/", "http://xn--bcher-kva.example/", "http://BÜCHER.example./", "http://XN--BCHER-KVA.EXAMPLE/", "http://b%C3%BCcher.example/"},
	} {
		want := hostOf(same[0])
		if want == "" {
			t.Fatalf("no host for %s", same[0])
		}
		for _, u := range same[1:] {
			if got := hostOf(u); got != want {
				t.Errorf("hostOf(%s) = %q, want %q as for %s", u, got, want, same[0])
			}
		}
	}
	apart := []string{"http://example.com/", "http://example.org/", "http://127.0.1.5/", "http://127.0.1.6/",
		"http://[::1]/", "http://[::2]/", "http://bucher.example/", "http://bücher.example/", "http://www.example.com/", "http://2130706434/"}
	seen := map[string]string{}
	for _, u := range apart {
		k := hostOf(u)
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s are one key %q, want two hosts", u, other, k)
		}
		seen[k] = u
	}
}
