package metrics_test

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode"
)

// promqlKeywords are PromQL's words that are not metric names when they
// stand alone: aggregation operators (sum by (le) (...)), set and
// grouping operators, modifiers and the special floats.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression selects, in
// order of first appearance: the identifiers that are neither functions
// (followed by "("), keywords, label names (inside {} or a by/on list),
// durations (inside []) nor parts of strings. Grafana's $variables are
// skipped. A selector without a name ({__name__="x"}) is an error: the
// check could not see which metric it means.
func metricNames(expr string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	rs := []rune(expr)
	labelList := false // the next "(" opens a list of label names
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '"' || r == '\'' || r == '`':
			end, err := skipString(rs, i)
			if err != nil {
				return nil, err
			}
			i = end
		case r == '#': // a comment, to the end of the line
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '{':
			end, body, err := skipBraces(rs, i)
			if err != nil {
				return nil, err
			}
			if strings.Contains(body, "__name__") {
				return nil, fmt.Errorf("%q: a selector by __name__; name the metric instead", expr)
			}
			i = end
		case r == '[':
			for i < len(rs) && rs[i] != ']' {
				i++
			}
			i++
		case r == '(' && labelList:
			for i < len(rs) && rs[i] != ')' {
				i++
			}
			i++
			labelList = false
		case r == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(rs) && rs[i] == '{' {
				for i < len(rs) && rs[i] != '}' {
					i++
				}
				i++
			}
			for i < len(rs) && isIdentRune(rs[i]) {
				i++
			}
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			for i < len(rs) && (isIdentRune(rs[i]) || rs[i] == '.' || ((rs[i] == '+' || rs[i] == '-') && (rs[i-1] == 'e' || rs[i-1] == 'E'))) {
				i++
			}
		case isIdentStart(r):
			start := i
			for i < len(rs) && isIdentRune(rs[i]) {
				i++
			}
			word := string(rs[start:i])
			j := i
			for j < len(rs) && unicode.IsSpace(rs[j]) {
				j++
			}
			lower := strings.ToLower(word)
			labelList = false // group_left without a list
			switch {
			case labelListKeywords[lower]:
				labelList = true
			case promqlKeywords[lower]:
			case j < len(rs) && rs[j] == '(': // a function
			default:
				if !seen[word] {
					seen[word] = true
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names, nil
}

func isIdentStart(r rune) bool {
	return r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

func isIdentRune(r rune) bool { return isIdentStart(r) || (r >= '0' && r <= '9') }

// skipString returns the index after the string starting at rs[i].
func skipString(rs []rune, i int) (int, error) {
	quote := rs[i]
	for j := i + 1; j < len(rs); j++ {
		if rs[j] == '\\' && quote != '`' {
			j++
			continue
		}
		if rs[j] == quote {
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("%q: unterminated string", string(rs))
}

// skipBraces returns the index after the label matchers starting at rs[i],
// and what they say with their strings left out.
func skipBraces(rs []rune, i int) (int, string, error) {
	var body strings.Builder
	for j := i + 1; j < len(rs); {
		switch rs[j] {
		case '}':
			return j + 1, body.String(), nil
		case '"', '\'', '`':
			end, err := skipString(rs, j)
			if err != nil {
				return 0, "", err
			}
			j = end
		default:
			body.WriteRune(rs[j])
			j++
		}
	}
	return 0, "", fmt.Errorf("%q: unterminated {", string(rs))
}

// seriesNames turns a /metrics page's families (name to TYPE) into the
// names a query can select: a histogram's _bucket, _sum and _count (it has
// no series of its bare name), a summary's bare name, _sum and _count, a
// counter's or gauge's own name.
func seriesNames(families map[string]string) map[string]bool {
	out := map[string]bool{}
	for name, typ := range families {
		switch typ {
		case "histogram":
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case "summary":
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// unknownMetrics lists, sorted, the names exprs select that exported lacks.
func unknownMetrics(exprs []string, exported map[string]bool) ([]string, error) {
	missing := map[string]bool{}
	for _, e := range exprs {
		names, err := metricNames(e)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !exported[n] {
				missing[n] = true
			}
		}
	}
	out := make([]string, 0, len(missing))
	for n := range missing {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// The extractor finds the metric names of the kinds of query a dashboard
// has, and nothing else: not functions, aggregation operators, label
// names in matchers or by() lists, strings, durations or variables.
func TestPromQLMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (outcome) (rate(batchfetch_urls_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))`:            {"batchfetch_urls_total"},
		`histogram_quantile(0.95, sum by (le) (rate(batchfetch_fetch_duration_seconds_bucket{job=~"$job"}[5m])))`:         {"batchfetch_fetch_duration_seconds_bucket"},
		`sum(rate(a_total[1m])) by (job) / on (job) group_left (pool) sum without (le) (b_count offset 5m) > bool 0.5e-3`: {"a_total", "b_count"},
		`max(x{outcome="sum(rate(not_a_metric[1m]))"}) or vector(0)`:                                                      {"x"},
		"${var} + y:recorded:rate5m # a comment naming z":                                                                 {"y:recorded:rate5m"},
		`count(up) * -Inf`: {"up"},
	} {
		got, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
	if _, err := metricNames(`rate({__name__="batchfetch_urls_total"}[1m])`); err == nil {
		t.Error("a selector by __name__ passed")
	}
}

// The check refuses a name the workers do not export, including a
// histogram's bare name and a counter with a histogram's suffix.
func TestUnknownMetricsAreReported(t *testing.T) {
	exported := seriesNames(map[string]string{
		"batchfetch_fetch_duration_seconds": "histogram",
		"batchfetch_urls_total":             "counter",
	})
	got, err := unknownMetrics([]string{
		`histogram_quantile(0.5, sum by (le) (rate(batchfetch_fetch_duration_seconds_bucket[1m])))`,
		`rate(batchfetch_fetch_duration_seconds_count[1m]) + rate(batchfetch_urls_total[1m])`,
		`batchfetch_fetch_duration_seconds`,
		`rate(batchfetch_url_total[1m])`,
		`rate(batchfetch_urls_total_count[1m])`,
	}, exported)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"batchfetch_fetch_duration_seconds", "batchfetch_url_total", "batchfetch_urls_total_count"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unknown = %q, want %q", got, want)
	}
}
