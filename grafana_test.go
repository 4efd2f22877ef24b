package entente_test

// The Grafana dashboard in deploy/grafana may only chart what a node
// exports: every metric its queries name must be on /metrics of a running
// node, or a panel would stay empty without anyone noticing.

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/nodetest"
)

// dashboardQuery is one query of a dashboard and where it is.
type dashboardQuery struct {
	where string // panel title, or templating variable name
	expr  string
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("deploy", "grafana", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in deploy/grafana (%v)", err)
	}
	out := map[string]dashboard{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[file] = d
	}
	return out
}

// labelValuesQuery is the one templating query form the dashboard uses,
// Grafana's label_values(metric, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// queries returns every PromQL expression of d, and the metrics its
// templating queries name.
func (d dashboard) queries(t *testing.T, file string) (exprs []dashboardQuery, templated []string) {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("%s: variable %s: query is neither an object nor a string: %s", file, v.Name, v.Query)
			}
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("%s: variable %s: query %q is not label_values(metric, label)", file, v.Name, q.Query)
		}
		templated = append(templated, m[1])
	}
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs = append(exprs, dashboardQuery{where: p.Title, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs, templated
}

// promqlNonMetrics are the identifiers of PromQL that are not metric names
// even when no parenthesis follows them.
var promqlNonMetrics = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true, "start": true, "end": true,
}

// promqlLabelLists are the keywords followed by a list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names expr selects, in order of first use.
// It tokenizes just enough PromQL for that: string literals, label matchers
// ({…}), ranges ([…]), label lists after by/without/on/ignoring/group_*,
// function and aggregation names, numbers and Grafana variables ($x, ${x})
// are not metric names.
func metricNames(expr string) []string {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// skipTo returns the index after the close that ends what starts at i,
	// stepping over string literals on the way.
	var skipTo func(i int, close byte) int
	skipString := func(i int) int {
		quote := expr[i]
		for i++; i < len(expr); i++ {
			if expr[i] == '\\' && quote != '`' {
				i++
			} else if expr[i] == quote {
				return i + 1
			}
		}
		return i
	}
	skipTo = func(i int, close byte) int {
		for i < len(expr) {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(i)
			case c == close:
				return i + 1
			default:
				i++
			}
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(i+1, '}')
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			switch {
			case promqlLabelLists[strings.ToLower(word)]:
				if next < len(expr) && expr[next] == '(' {
					i = skipTo(next+1, ')')
				}
			case promqlNonMetrics[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// a function
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (instance, role) (entente_conferences{instance=~"$instance"})`, []string{"entente_conferences"}},
		{`8 * sum without(kind) (rate(a_total{x="}", y='{z}'}[$__rate_interval] offset 5m))`, []string{"a_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(h_bucket{route!="GET /x/{id}/media"}[5m])))`, []string{"h_bucket"}},
		{`a / on(instance) group_left(version) b or c > bool 1e3 unless d`, []string{"a", "b", "c", "d"}},
		{`max(x{a="\"}"}) - max(x) + ${var}_y`, []string{"x"}},
		{`-8 * sum(rate(by_route_total[1m]))`, []string{"by_route_total"}},
	} {
		if got := metricNames(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("metricNames(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// exportedNames reads the metric names of a /metrics page: every sample's,
// and for each histogram and summary the names of its series.
func exportedNames(t *testing.T, page string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"] = true
				fallthrough
			case "summary":
				names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func TestDashboardIsImportable(t *testing.T) {
	for file, d := range loadDashboards(t) {
		if d.Title == "" || d.UID == "" {
			t.Errorf("%s: title %q, uid %q: both must be set", file, d.Title, d.UID)
		}
		var hasDatasource bool
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
				hasDatasource = true
			} else if v.Datasource != nil && *v.Datasource != (datasourceRef{"prometheus", "${datasource}"}) {
				t.Errorf("%s: variable %s does not query the datasource variable: %+v", file, v.Name, *v.Datasource)
			}
		}
		if !hasDatasource {
			t.Errorf("%s: no Prometheus datasource variable named datasource", file)
		}
		ids := map[int]string{}
		var walk func(ps []dashboardPanel)
		walk = func(ps []dashboardPanel) {
			for _, p := range ps {
				if other, dup := ids[p.ID]; dup || p.ID == 0 {
					t.Errorf("%s: panel %q has id %d, also %q's", file, p.Title, p.ID, other)
				}
				ids[p.ID] = p.Title
				if p.Type != "row" && (p.Datasource == nil || *p.Datasource != (datasourceRef{"prometheus", "${datasource}"}) || len(p.Targets) == 0) {
					t.Errorf("%s: panel %q must have targets and use the datasource variable", file, p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || *tg.Datasource != (datasourceRef{"prometheus", "${datasource}"}) || tg.Expr == "" {
						t.Errorf("%s: panel %q has a query without an expression or the datasource variable", file, p.Title)
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
}

// Every metric the dashboard queries is one a running node exports once it
// has hosted a conference and served requests; and the dashboard covers what
// an operator watches first.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	fed := nodetest.New(t)
	n := fed.Start(t, "ministry", nil)
	alice, _ := nodetest.User(t, n, "alice", "Alice")
	conf, err := n.Federation().CreateConference(t.Context(), alice, "Weekly", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Federation().Join(t.Context(), alice, conf.ID); err != nil {
		t.Fatal(err)
	}
	client := fed.Client()
	var page string
	for range 2 { // the second page counts the first request
		resp, err := client.Get(n.PublicURL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		page = string(b)
	}
	exported := exportedNames(t, page)

	used := map[string]bool{}
	for file, d := range loadDashboards(t) {
		exprs, templated := d.queries(t, file)
		for _, name := range templated {
			used[name] = true
			if !exported[name] {
				t.Errorf("%s: a templating variable queries %s, which the node does not export", file, name)
			}
		}
		for _, q := range exprs {
			names := metricNames(q.expr)
			if len(names) == 0 {
				t.Errorf("%s: panel %q: query names no metric: %s", file, q.where, q.expr)
			}
			for _, name := range names {
				used[name] = true
				if !exported[name] {
					t.Errorf("%s: panel %q queries %s, which the node does not export: %s", file, q.where, name, q.expr)
				}
			}
		}
	}
	readmeListsExported(t, page)
	for _, name := range []string{
		"entente_conferences", "entente_conference_participants",
		"entente_media_forwarded_packets_total", "entente_media_trunk_sent_bytes_total", "entente_media_trunk_received_bytes_total",
		"entente_federation_outbox_messages", "entente_federation_outbox_oldest_pending_age_seconds",
		"entente_federation_deliveries_total", "entente_http_requests_total", "entente_http_request_duration_seconds_bucket",
	} {
		if !used[name] {
			t.Errorf("no dashboard charts %s", name)
		}
	}
}

// readmeListsExported checks the README's table of metrics against a
// /metrics page: the same entente_* metrics, no more, no fewer.
func readmeListsExported(t *testing.T, page string) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Monitoring\n")
	if !ok {
		t.Fatal("README.md has no Monitoring section")
	}
	if end := strings.Index(section, "\n#"); end >= 0 {
		section = section[:end]
	}
	listed := map[string]bool{}
	// A trunk's series exist only while the trunk is open; the node under
	// test has none.
	perTrunk := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(line, "| `entente_") {
			for _, m := range regexp.MustCompile("`(entente_[a-z_]+)`").FindAllStringSubmatch(cells[1], -1) {
				listed[m[1]] = true
				if len(cells) > 3 && strings.Contains(cells[3], "`peer`") && strings.HasPrefix(m[1], "entente_media_trunk_") {
					perTrunk[m[1]] = true
				}
			}
		}
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(page, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "entente_") {
			exported[f[2]] = true
		}
	}
	for name := range exported {
		if !listed[name] {
			t.Errorf("README.md's Monitoring table does not list %s, which the node exports", name)
		}
	}
	for name := range listed {
		if !exported[name] && !perTrunk[name] {
			t.Errorf("README.md's Monitoring table lists %s, which the node does not export", name)
		}
	}
}

// A node with several replicas is watched replica by replica: every query of
// what an operator watches first keeps the instance label (one scrape target,
// so one replica) instead of summing the replicas away.
func TestDashboardChartsEachReplica(t *testing.T) {
	perReplica := []string{
		"entente_conferences", "entente_conference_participants",
		"entente_media_forwarded_packets_total",
		"entente_media_trunk_sent_bytes_total", "entente_media_trunk_received_bytes_total",
		"entente_federation_outbox_messages", "entente_federation_outbox_oldest_pending_age_seconds",
		"entente_federation_deliveries_total",
	}
	// An aggregation that keeps the instance label: "by (…instance…)".
	keepsInstance := regexp.MustCompile(`\bby\s*\(([^)]*\b)?instance\b`)
	aggregates := regexp.MustCompile(`\b(sum|max|min|avg|count|topk|bottomk|quantile)\s*(\(|by|without)`)
	charted := map[string]bool{}
	for file, d := range loadDashboards(t) {
		exprs, _ := d.queries(t, file)
		for _, q := range exprs {
			for _, name := range metricNames(q.expr) {
				if !slices.Contains(perReplica, name) {
					continue
				}
				charted[name] = true
				if aggregates.MatchString(q.expr) && !keepsInstance.MatchString(q.expr) {
					t.Errorf("%s: panel %q adds the replicas of %s together: %s", file, q.where, name, q.expr)
				}
			}
		}
	}
	for _, name := range perReplica {
		if !charted[name] {
			t.Errorf("no dashboard charts %s", name)
		}
	}
}
