package workflows

import (
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/activities"
)

func TestValidateRobots(t *testing.T) {
	for raw, obeys := range map[string]bool{
		`{"urls":["http://a.example/"]}`:                   DefaultRobots == RobotsObey,
		`{"urls":["http://a.example/"],"robots":"obey"}`:   true,
		`{"urls":["http://a.example/"],"robots":"ignore"}`: false,
	} {
		var in Input
		if err := in.UnmarshalJSON([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		s, err := in.Validate()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if s.obeysRobots() != obeys {
			t.Errorf("%s: obeys robots.txt %v, want %v", raw, s.obeysRobots(), obeys)
		}
		e := &engine{s: s}
		if got := e.policy().Robots == RobotsObey; got != obeys {
			t.Errorf("%s: the fetch policy obeys robots.txt %v, want %v", raw, got, obeys)
		}
	}
	for raw, want := range map[string]string{
		`{"urls":["http://a.example/"],"robots":"Obey"}`:   `robots: "Obey" is not one of "obey", "ignore"`,
		`{"urls":["http://a.example/"],"robots":"yes"}`:    `robots: "yes" is not one of "obey", "ignore"`,
		`{"urls":["http://a.example/"],"robots":""}`:       "robots: must not be empty",
		`{"urls":["http://a.example/"],"robots":true}`:     "robots: wrong JSON type",
		`{"urls":["http://a.example/"],"robots":["obey"]}`: "robots: wrong JSON type",
	} {
		var in Input
		if err := in.UnmarshalJSON([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
}

// A batch that obeys robots.txt calls its fetches by the names only
// workers that check it have; one that does not, as before.
func TestRobotsChoosesTheFetchActivity(t *testing.T) {
	var f *activities.Fetcher
	plain := chunk{n: 1, urls: []activities.URLTask{{URL: "http://a.example/"}}}
	asked := chunk{n: 1, urls: []activities.URLTask{{URL: "http://a.example/", R: &activities.Request{Method: "HEAD"}}}}
	for _, tc := range []struct {
		robots string
		ch     chunk
		want   string
	}{
		{"", plain, "plain"}, {RobotsIgnore, plain, "plain"}, {RobotsIgnore, asked, activities.FetchChunkWithRequest},
		{RobotsObey, plain, activities.FetchChunkObeyingRobots}, {RobotsObey, asked, activities.FetchChunkObeyingRobots},
	} {
		e := &engine{s: Settings{Robots: tc.robots}}
		got := e.fetchName(tc.ch, f.FetchChunk, activities.FetchChunkWithRequest, activities.FetchChunkObeyingRobots)
		name, ok := got.(string)
		if !ok {
			name = "plain"
		}
		if name != tc.want {
			t.Errorf("robots %q: fetch by %s, want %s", tc.robots, name, tc.want)
		}
	}
}
