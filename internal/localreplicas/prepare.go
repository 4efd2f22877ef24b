package localreplicas

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/localuser"
)

// Conference creates a conference hosted by the node, organised by a new
// local user, and returns its ID.
func (n *Node) Conference(ctx context.Context, organiser, title string) (string, error) {
	u, err := localfed.AddUser(ctx, n.Admin, organiser, organiser)
	if err != nil {
		return "", err
	}
	conf, err := n.Admin.Federation().CreateConference(ctx, u, title, nil)
	if err != nil {
		return "", fmt.Errorf("create conference: %w", err)
	}
	return conf.ID, nil
}

// Participant adds a local user who joins conference, and returns the
// user's reference and a bearer token.
func (n *Node) Participant(ctx context.Context, conference, id, name string) (ref, token string, err error) {
	var u localuser.User
	if u, err = localfed.AddUser(ctx, n.Admin, id, name); err != nil {
		return "", "", err
	}
	if _, _, err = n.Admin.Federation().Join(ctx, u, conference); err != nil {
		return "", "", fmt.Errorf("%s joins: %w", id, err)
	}
	if token, err = accounts.IssueToken(ctx, n.Admin.Store(), u.ID, 24*time.Hour, time.Now()); err != nil {
		return "", "", fmt.Errorf("token for %s: %w", id, err)
	}
	return federation.UserRef(u.ID, n.DID), token, nil
}

// MediaURL is the media WebSocket of conference at replica i.
func (n *Node) MediaURL(i int, conference string) string {
	return strings.Replace(n.Replicas[i].URL, "https://", "wss://", 1) + "/api/v1/conferences/" + conference + "/media"
}

// HTTPClient trusts the node's CA.
func (n *Node) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.PEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// Metric sums the samples of the metric name that replica i exports.
func (n *Node) Metric(ctx context.Context, i int, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Replicas[i].URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("replica %s metrics: %w", n.Replicas[i].ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("replica %s metrics: %s", n.Replicas[i].ID, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != ' ' && rest[0] != '{')) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// processCPU reads a process's user and system time from /proc.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("process CPU time: /proc/%d/stat too short", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process CPU time: /proc/%d/stat unreadable", pid)
	}
	// USER_HZ is 100 on every Linux platform Go supports.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
