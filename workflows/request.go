package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/batchfetch/batchfetch/activities"
)

// readURLs takes the urls of a JSON input: strings, or objects that also
// say how to ask for their URL. It returns what is wrong, naming the
// entry, or "".
func (in *Input) readURLs(raw []json.RawMessage) string {
	if raw == nil {
		return ""
	}
	in.URLs = make([]string, len(raw))
	for i, b := range raw {
		b = bytes.TrimSpace(b)
		if len(b) > 0 && b[0] == '"' {
			if err := json.Unmarshal(b, &in.URLs[i]); err != nil {
				return fmt.Sprintf("urls[%d]: %v", i, err)
			}
			continue
		}
		var e activities.URLEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Sprintf("urls[%d]: %v", i, err)
		}
		in.URLs[i] = e.URL
		if !e.RequestFields.Empty() {
			if in.URLRequests == nil {
				in.URLRequests = make([]*activities.RequestFields, len(raw))
			}
			in.URLRequests[i] = &e.RequestFields
		}
	}
	return ""
}

// MarshalJSON writes the input as UnmarshalJSON reads it: a URL with
// request fields of its own as an object among the urls.
func (in Input) MarshalJSON() ([]byte, error) {
	type plain Input
	p := struct {
		plain
		URLs []activities.URLEntry `json:"urls,omitempty"`
	}{plain: plain(in)}
	if in.URLs != nil {
		p.URLs = make([]activities.URLEntry, len(in.URLs))
		for i, u := range in.URLs {
			p.URLs[i].URL = u
			if i < len(in.URLRequests) && in.URLRequests[i] != nil {
				p.URLs[i].RequestFields = *in.URLRequests[i]
			}
		}
	}
	return json.Marshal(p)
}

// requests checks how the batch and each of its URLs are asked for, and
// sets them in s: the batch's Request, and each URL's own (PerURL).
func (in Input) requests(s *Settings) error {
	batch, err := in.RequestFields.Request()
	if err != nil {
		return err
	}
	s.Request = batch
	if len(in.URLRequests) > len(in.URLs) {
		return fmt.Errorf("urls: %d URL requests for %d URLs", len(in.URLRequests), len(in.URLs))
	}
	for i, f := range in.URLRequests {
		if f == nil {
			continue
		}
		own, err := f.Request()
		if err != nil {
			return fmt.Errorf("urls[%d]: %w", i, err)
		}
		if own == nil {
			continue
		}
		if s.PerURL == nil {
			s.PerURL = make([]*activities.Request, len(in.URLs))
		}
		s.PerURL[i] = own
	}
	for i := range in.URLs {
		var own *activities.Request
		if s.PerURL != nil {
			own = s.PerURL[i]
		}
		if err := activities.CheckMerged(activities.MergeRequests(batch, own)); err != nil {
			if own == nil {
				return err // the batch's own fields are wrong
			}
			return fmt.Errorf("urls[%d]: %w", i, err)
		}
	}
	if len(in.URLs) == 0 {
		return activities.CheckMerged(batch)
	}
	return nil
}

// perURL is URL i's own request, if it has one.
func (s Settings) perURL(i int) *activities.Request {
	if i < len(s.PerURL) {
		return s.PerURL[i]
	}
	return nil
}

// requestsBudget bounds the URLs' own requests a batch keeps in its
// workflow (and sends in its activities' inputs); a batch with more
// stages them with its URLs.
const requestsBudget = 256 << 10

// requestsFit tells whether the URLs' own requests fit requestsBudget.
func requestsFit(per []*activities.Request) bool {
	n := 0
	for _, r := range per {
		if r == nil {
			continue
		}
		n += 16 + len(r.Method)
		for _, h := range r.Headers {
			n += 16 + activities.JSONLen(h.Name) + activities.JSONLen(h.Value)
			for _, host := range h.Hosts {
				n += 3 + activities.JSONLen(host)
			}
		}
		if r.Body != nil {
			n += 16 + activities.JSONLen(r.Body.Text) + activities.JSONLen(r.Body.Key)
		}
		if n > requestsBudget {
			return false
		}
	}
	return true
}

// verb is the method of a chunk's requests, for its summary: its URL's
// for a chunk of one URL, the batch's otherwise.
func (e *engine) verb(ch chunk) string {
	if ch.n == 1 && ch.urls != nil {
		return activities.MergeRequests(e.s.Request, ch.urls[0].R).Verb()
	}
	return e.s.Request.Verb()
}
