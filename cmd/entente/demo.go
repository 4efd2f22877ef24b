package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/node"
)

// demoInstitutions names the demo's nodes; a demo with more nodes than this
// list numbers the rest.
var demoInstitutions = []struct{ slug, name, user, userName string }{
	{"ministry", "Ministry of Digital Affairs", "alice", "Alice Martin"},
	{"agency", "National Statistics Agency", "bruno", "Bruno Lefèvre"},
	{"city", "City of Lyon", "chloe", "Chloé Bernard"},
}

type demoOptions struct {
	nodes    int
	dataDir  string
	basePort int
	once     bool
	verbose  bool
	matrix   demoMatrix
}

// demoMatrix bridges the first demo node to a Matrix homeserver when
// registration is set.
type demoMatrix struct {
	registration, homeserver, domain, widgetOrigins, alias string
	invite                                                 []string
}

func (a *app) demoCommand() *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start a local federation of institution nodes on 127.0.0.1",
		Long: `Start complete institution nodes on 127.0.0.1, each with its own data
directory, DID and keys, make them trust each other, and check that each has
resolved the others' DID documents over HTTPS. Runs until interrupted.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.nodes < 2 || o.nodes > 16 {
				return usagef("--nodes must be between 2 and 16, got %d", o.nodes)
			}
			if o.basePort != 0 && (o.basePort < 1024 || o.basePort+o.nodes > 65535) {
				return usagef("--base-port must be 0 or between 1024 and %d", 65535-o.nodes)
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return a.runDemo(ctx, o)
		},
	}
	c.Flags().IntVar(&o.nodes, "nodes", 2, "number of institution nodes")
	c.Flags().StringVar(&o.dataDir, "data-dir", "", "directory for the nodes' data (default: a temporary directory, removed on exit)")
	c.Flags().IntVar(&o.basePort, "base-port", 8441, "port of the first node; the others follow (0: any free ports)")
	c.Flags().BoolVar(&o.once, "once", false, "exit once the federation is ready instead of running until interrupted")
	c.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log at info level instead of warnings only")
	c.Flags().StringVar(&o.matrix.registration, "matrix-registration", "",
		"appservice registration the homeserver loaded (entente bridge generate-registration): the first node runs the Matrix bridge, listening at the registration's url")
	c.Flags().StringVar(&o.matrix.homeserver, "matrix-homeserver", "http://localhost:8008", "with --matrix-registration: the homeserver's client and federation API base URL")
	c.Flags().StringVar(&o.matrix.domain, "matrix-domain", "localhost", "with --matrix-registration: the homeserver's server name")
	c.Flags().StringVar(&o.matrix.widgetOrigins, "matrix-widget-origins", "", "with --matrix-registration: origins (https://…) of Matrix clients that may show the call as a widget")
	c.Flags().StringSliceVar(&o.matrix.invite, "matrix-invite", nil, "with --matrix-registration: Matrix users (@name:server) the bot invites to the conference's room")
	c.Flags().StringVar(&o.matrix.alias, "matrix-alias", "", "with --matrix-registration: publish the conference's room under this address (#name:<matrix-domain>), which any Matrix user of the homeserver can join")
	return c
}

// bridgeConfig is the first demo node's bridge configuration, or none.
func (m demoMatrix) bridgeConfig() (config.Bridge, error) {
	if m.registration == "" {
		return config.Bridge{}, nil
	}
	reg, err := bridge.LoadRegistration(m.registration)
	if err != nil {
		return config.Bridge{}, usagef("--matrix-registration: %v", err)
	}
	u, err := url.Parse(reg.URL)
	if err != nil || u.Host == "" {
		return config.Bridge{}, usagef("--matrix-registration: url %q has no host:port for the appservice to listen on", reg.URL)
	}
	c := config.Default().Bridge
	c.Enabled = true
	c.HomeserverURL, c.HomeserverDomain = m.homeserver, m.domain
	c.Listen, c.Registration = u.Host, m.registration
	if reg.SenderLocalpart != "" {
		c.BotLocalpart = reg.SenderLocalpart
	}
	// The homeserver serves its federation API, where OpenID tokens are
	// checked, at the same base URL in the single-process setups a demo
	// runs against (Synapse, Dendrite).
	c.OpenIDServerName, c.OpenIDBaseURL = m.domain, m.homeserver
	c.WidgetOrigins = m.widgetOrigins
	return c, nil
}

func (a *app) runDemo(ctx context.Context, o demoOptions) (err error) {
	start := time.Now()
	dir := o.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "entente-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	level := "warn"
	if o.verbose {
		level = "info"
	}
	log := newLogger(a.stderr, "text", level)

	// One CA for the local federation, so that the nodes verify each other's
	// TLS certificates for real instead of skipping verification.
	ca, caFile, err := localfed.NewCA(dir, "demo", 30*24*time.Hour)
	if err != nil {
		return err
	}

	var nodes []*node.Node
	defer func() { localfed.ShutdownAll(nodes) }()
	for i := 0; i < o.nodes; i++ {
		n, err := startDemoNode(ctx, i, o, dir, ca, caFile, log)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	if err := localfed.Trust(ctx, nodes); err != nil {
		return err
	}
	if err := localfed.Federate(ctx, nodes); err != nil {
		return err
	}
	c, err := localfed.Conference(ctx, nodes, "Inter-ministry coordination", demoUser)
	if err != nil {
		return err
	}
	call := demoCall{Call: c}
	if b := nodes[0].Bridge(); b != nil {
		if call.matrixRoom, err = b.Portal(ctx, call.Conference); err != nil {
			return fmt.Errorf("demo: Matrix room: %w", err)
		}
		if _, err := b.Invite(ctx, call.Conference, o.matrix.invite); err != nil {
			return fmt.Errorf("demo: --matrix-invite: %w", err)
		}
		if o.matrix.alias != "" {
			if err := b.Publish(ctx, call.Conference, o.matrix.alias); err != nil {
				return fmt.Errorf("demo: --matrix-alias: %w", err)
			}
			call.matrixAlias = o.matrix.alias
		}
		if err := b.Sync(ctx, call.Conference); err != nil {
			return fmt.Errorf("demo: Matrix room: %w", err)
		}
	}
	printDemo(a.stdout, nodes, call, dir, o.dataDir == "", time.Since(start))
	if o.once {
		return nil
	}
	fmt.Fprintln(a.stdout, "Press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

// demoCall is the conference the demo prepares between its institutions.
type demoCall struct {
	localfed.Call
	// matrixRoom is the conference's Matrix room when the demo bridges it.
	matrixRoom string
	// matrixAlias is the address the room was published under (--matrix-alias).
	matrixAlias string
}

func startDemoNode(ctx context.Context, i int, o demoOptions, dir string, ca *devcert.CA, caFile string, log *slog.Logger) (*node.Node, error) {
	slug, name := demoSlug(i), "Institution "+strconv.Itoa(i+1)
	if i < len(demoInstitutions) {
		name = demoInstitutions[i].name
	}
	port := 0
	if o.basePort != 0 {
		port = o.basePort + i
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("demo node %s: %w (choose other ports with --base-port, or 0 for any)", slug, err)
	}
	ln := localfed.Node{Name: name, DataDir: filepath.Join(dir, slug), CA: ca, CAFile: caFile, Log: log.With("institution", slug), Version: version}
	if i == 0 {
		if ln.Bridge, err = o.matrix.bridgeConfig(); err != nil {
			l.Close()
			return nil, err
		}
	}
	n, err := localfed.Start(ctx, l, ln)
	if err != nil {
		return nil, fmt.Errorf("demo node %s: %w", slug, err)
	}
	return n, nil
}

func demoSlug(i int) string {
	if i < len(demoInstitutions) {
		return demoInstitutions[i].slug
	}
	return "institution-" + strconv.Itoa(i+1)
}

func demoUser(i int) (id, name string) {
	if i < len(demoInstitutions) {
		return demoInstitutions[i].user, demoInstitutions[i].userName
	}
	return "user" + strconv.Itoa(i+1), "User " + strconv.Itoa(i+1)
}

func printDemo(w io.Writer, nodes []*node.Node, call demoCall, dir string, temporary bool, took time.Duration) {
	fmt.Fprintf(w, "Entente demo: %d institution nodes federated on 127.0.0.1\n\n", len(nodes))
	for i, n := range nodes {
		u := call.Users[i]
		fmt.Fprintf(w, "  %s\n    DID:   %s\n    URL:   %s\n    User:  %s (%s), API token %s\n    Join:  %s/app/conference/%s#token=%s\n",
			n.Name(), n.DID(), n.PublicURL(), u.User.ID, u.User.DisplayName, u.Token, n.PublicURL(), call.Conference, u.Token)
		if key, secret, ok := n.LiveKitCredentials(); ok {
			fmt.Fprintf(w, "    LiveKit: %s  API key %s  secret %s\n", n.LiveKitURL(), key, secret)
		}
	}
	fmt.Fprintf(w, "\nConference %q (%s)\n  hosted by %s; every other institution invited and accepted.\n",
		call.Title, call.Conference, nodes[0].Name())
	fmt.Fprintf(w, "  Try: curl --cacert %s -H 'Authorization: Bearer %s' %s/api/v1/conferences/%s\n",
		filepath.Join(dir, "demo-ca.pem"), call.Users[1].Token, nodes[1].PublicURL(), call.Conference)
	where := dir
	if temporary {
		where += " (temporary, removed on exit)"
	}
	if call.matrixRoom != "" {
		fmt.Fprintf(w, "  Matrix room: %s, bridged by %s. Matrix users invited there (--matrix-invite, or\n"+
			"  POST %s/admin/v1/conferences/%s/matrix {\"invite\": [\"@name:server\"]}) accept the invitation,\n"+
			"  then open the call from the room's widget.\n", call.matrixRoom, nodes[0].Name(), nodes[0].PublicURL(), call.Conference)
		if call.matrixAlias != "" {
			fmt.Fprintf(w, "  Any Matrix user of the homeserver joins the room by its address %s.\n", call.matrixAlias)
		}
	}
	fmt.Fprintf(w, "\nEach node resolved the others' DID documents over HTTPS.\n")
	fmt.Fprintf(w, "Open a Join link per institution, each in its own browser profile, to join the call as that\n"+
		"institution's user (the nodes' certificates come from the demo CA %s:\n"+
		"import it into the browser, or accept the certificate warning once per node).\n",
		filepath.Join(dir, "demo-ca.pem"))
	fmt.Fprintf(w, "Data: %s\nReady in %d ms.\n", where, took.Milliseconds())
}
