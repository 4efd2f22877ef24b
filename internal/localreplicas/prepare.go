package localreplicas

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
)

// adminNode opens the admin handle on the node's store and keys the first
// time it is needed: the replicas have made the schema and the keys by then.
func (n *Node) adminNode(ctx context.Context) (*node.Node, error) {
	n.adminMu.Lock()
	defer n.adminMu.Unlock()
	if n.admin == nil {
		a, err := node.New(ctx, n.adminConfig(), node.Options{})
		if err != nil {
			return nil, fmt.Errorf("admin handle: %w", err)
		}
		n.admin = a
	}
	return n.admin, nil
}

// Conference creates a conference hosted by the node, organised by a new
// local user, and returns its ID.
func (n *Node) Conference(ctx context.Context, organiser, title string) (string, error) {
	admin, err := n.adminNode(ctx)
	if err != nil {
		return "", err
	}
	u, err := localfed.AddUser(ctx, admin, organiser, organiser)
	if err != nil {
		return "", err
	}
	conf, err := admin.Federation().CreateConference(ctx, u, title, nil)
	if err != nil {
		return "", fmt.Errorf("create conference: %w", err)
	}
	return conf.ID, nil
}

// Participant adds a local user who joins conference, and returns the
// user's reference and a bearer token.
func (n *Node) Participant(ctx context.Context, conference, id, name string) (ref, token string, err error) {
	admin, err := n.adminNode(ctx)
	if err != nil {
		return "", "", err
	}
	var u localuser.User
	if u, err = localfed.AddUser(ctx, admin, id, name); err != nil {
		return "", "", err
	}
	if _, _, err = admin.Federation().Join(ctx, u, conference); err != nil {
		return "", "", fmt.Errorf("%s joins: %w", id, err)
	}
	if token, err = accounts.IssueToken(ctx, admin.Store(), u.ID, 24*time.Hour, time.Now()); err != nil {
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
