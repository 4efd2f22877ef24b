package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

// withNode opens the node's store, keys and federation service without
// serving, for administrative commands. Messages they queue are delivered by
// the running node (it polls its outbox every second).
func (a *app) withNode(ctx context.Context, path string, fn func(n *node.Node) error) error {
	cfg, err := a.loadConfig(path)
	if err != nil {
		return err
	}
	n, err := node.New(ctx, cfg, node.Options{Logger: slog.New(slog.DiscardHandler), Version: version, Tool: true})
	if err != nil {
		return err
	}
	defer n.Shutdown(context.Background())
	return fn(n)
}

func (a *app) usersCommand() *cobra.Command {
	var path string
	c := &cobra.Command{Use: "users", Short: "Manage the node's local users", Args: noArgs, RunE: groupRun}
	c.PersistentFlags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	var display string
	var admin, passwordStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add or update a local user",
		Args:  exactArgs(1, "a user name"),
		RunE: func(c *cobra.Command, args []string) error {
			var password string
			if passwordStdin {
				// Read before opening the node, so that a missing password
				// changes nothing.
				var err error
				if password, err = readPassword(c.InOrStdin()); err != nil {
					return err
				}
				if err := accounts.CheckPassword(password); err != nil {
					return err
				}
			}
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				u, err := accounts.AddUser(c.Context(), n.Store(), args[0], display, admin, time.Now())
				if err != nil {
					return err
				}
				if passwordStdin {
					if err := accounts.SetPassword(c.Context(), n.Store(), u.ID, password); err != nil {
						return fmt.Errorf("user %s: %w", u.ID, err)
					}
				}
				fmt.Fprintf(a.stdout, "user %s (%s) on %s\n", u.ID, u.DisplayName, n.DID())
				return nil
			})
		},
	}
	add.Flags().StringVar(&display, "display-name", "", "name shown to other participants (default: the user name)")
	add.Flags().BoolVar(&admin, "admin", false, "may use the admin API")
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the user's sign-in password from the first line of standard input")
	c.AddCommand(add, &cobra.Command{
		Use:   "list",
		Short: "List local users",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				users, err := n.Store().ListUsers(c.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tDISPLAY NAME\tADMIN")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%t\n", u.ID, u.DisplayName, u.Admin)
				}
				return tw.Flush()
			})
		},
	})
	return c
}

func (a *app) tokenCommand() *cobra.Command {
	var path string
	c := &cobra.Command{Use: "token", Short: "Issue API tokens for local users", Args: noArgs, RunE: groupRun}
	c.PersistentFlags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	var ttl time.Duration
	issue := &cobra.Command{
		Use:   "issue USER",
		Short: "Issue a bearer token for USER (shown once)",
		Args:  exactArgs(1, "a user name"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				tok, err := accounts.IssueToken(c.Context(), n.Store(), args[0], ttl, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, tok)
				return nil
			})
		},
	}
	issue.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the token is valid")
	c.AddCommand(issue)
	return c
}

func (a *app) peersCommand() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "peers",
		Short: "Manage the trust list: the institutions this node federates with",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.PersistentFlags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	var p store.Peer
	add := &cobra.Command{
		Use:   "add DID",
		Short: "Trust a peer node (or update its entry)",
		Args:  exactArgs(1, "the peer's DID"),
		RunE: func(c *cobra.Command, args []string) error {
			p.DID, p.AddedAt = args[0], time.Now().UTC()
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				if err := (federation.TrustList{Store: n.Store()}).Add(c.Context(), p); err != nil {
					return usageError{err}
				}
				fmt.Fprintf(a.stdout, "trusted %s (%s)\n", p.DID, p.Name)
				return nil
			})
		},
	}
	add.Flags().StringVar(&p.Name, "name", "", "the institution's display name (required)")
	add.Flags().StringVar(&p.KeyPin, "pin", "", "accept only this publicKeyMultibase of the peer")
	add.Flags().BoolVar(&p.MayInvite, "may-invite", true, "the peer may invite this node's users")
	add.Flags().BoolVar(&p.MayRelayMedia, "may-relay-media", true, "this node's users' media may be relayed through the peer's SFU")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List trusted peers",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				peers, err := n.Store().ListPeers(c.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DID\tNAME\tMAY INVITE\tMAY RELAY MEDIA\tPINNED")
				for _, p := range peers {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%t\n", p.DID, p.Name, p.MayInvite, p.MayRelayMedia, p.KeyPin != "")
				}
				return tw.Flush()
			})
		},
	}, &cobra.Command{
		Use:   "show DID",
		Short: "Show one trust entry",
		Args:  exactArgs(1, "the peer's DID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				p, err := (federation.TrustList{Store: n.Store()}).Get(c.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(a, federationPeerView(p))
			})
		},
	}, &cobra.Command{
		Use:   "remove DID",
		Short: "Stop trusting a peer",
		Args:  exactArgs(1, "the peer's DID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				if err := (federation.TrustList{Store: n.Store()}).Remove(c.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed %s\n", args[0])
				return nil
			})
		},
	})
	return c
}

func federationPeerView(p store.Peer) federation.PeerView {
	return federation.PeerView{DID: p.DID, Name: p.Name, KeyPin: p.KeyPin, MayInvite: p.MayInvite, MayRelayMedia: p.MayRelayMedia, AddedAt: p.AddedAt}
}

func printJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) confCommand() *cobra.Command {
	var path, as string
	c := &cobra.Command{Use: "conf", Short: "Create, invite, list, show, end and audit conferences", Args: noArgs, RunE: groupRun}
	c.PersistentFlags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	c.PersistentFlags().StringVar(&as, "as", "", "act as this local user (default for end: the node itself)")
	user := func(ctx context.Context, n *node.Node) (localuser.User, error) {
		if as == "" {
			return localuser.User{}, usagef("--as USER is required")
		}
		u, err := n.Store().GetUser(ctx, as)
		if err != nil {
			return localuser.User{}, fmt.Errorf("user %q: %w", as, err)
		}
		return localuser.User{ID: u.ID, DisplayName: u.DisplayName, Admin: u.Admin}, nil
	}
	c.AddCommand(&cobra.Command{
		Use:   "create TITLE",
		Short: "Create a conference hosted on this node",
		Args:  exactArgs(1, "a title"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				u, err := user(c.Context(), n)
				if err != nil {
					return err
				}
				conf, err := n.Federation().CreateConference(c.Context(), u, args[0], nil)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, conf.ID)
				return nil
			})
		},
	})
	var users string
	invite := &cobra.Command{
		Use:   "invite ID NODE_DID",
		Short: "Invite a trusted node's organisation (or --users of it)",
		Args:  exactArgs(2, "a conference id and a node DID"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				u, err := user(c.Context(), n)
				if err != nil {
					return err
				}
				var list []string
				if users != "" {
					list = strings.Split(users, ",")
				}
				seq, err := n.Federation().Invite(c.Context(), u, args[0], args[1], list)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "invited %s (record %d); the running node delivers the invitation\n", args[1], seq)
				return nil
			})
		},
	}
	invite.Flags().StringVar(&users, "users", "", "comma-separated user names of the invited node (default: the whole organisation)")
	c.AddCommand(invite)
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the conferences this node hosts or takes part in",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				confs, err := n.Store().ListConferences(c.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTITLE\tHOST\tSTATE\tRECORDS")
				for _, cf := range confs {
					state := "active"
					if cf.Ended {
						state = "ended"
					} else if cf.Locked {
						state = "locked"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", cf.ID, cf.Title, cf.Host, state, cf.HeadSeq)
				}
				return tw.Flush()
			})
		},
	}, &cobra.Command{
		Use:   "show ID",
		Short: "Show a conference with its nodes and participants",
		Args:  exactArgs(1, "a conference id"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				v, err := n.Federation().ConferenceDetail(c.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(a, v)
			})
		},
	}, &cobra.Command{
		Use:   "end ID",
		Short: "End a conference hosted on this node",
		Args:  exactArgs(1, "a conference id"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				u := localuser.User{}
				if as != "" {
					var err error
					if u, err = user(c.Context(), n); err != nil {
						return err
					}
				}
				seq, err := n.Federation().Moderate(c.Context(), u, args[0], federation.TypeEnd, "")
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "ended %s (record %d)\n", args[0], seq)
				return nil
			})
		},
	})
	var asJSON bool
	audit := &cobra.Command{
		Use:   "audit ID",
		Short: "Verify a conference's signed, hash-chained log and print it",
		Args:  exactArgs(1, "a conference id"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withNode(c.Context(), path, func(n *node.Node) error {
				rep, err := n.Federation().Audit(c.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					if err := printJSON(a, rep); err != nil {
						return err
					}
				} else {
					printAudit(a, rep)
				}
				if !rep.Valid {
					return fmt.Errorf("audit of %s failed: %s", args[0], rep.Problem)
				}
				return nil
			})
		},
	}
	audit.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.AddCommand(audit)
	return c
}

func printAudit(a *app, rep federation.AuditReport) {
	fmt.Fprintf(a.stdout, "conference %s hosted by %s\n", rep.Conference, rep.Host)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tSENDER\tHASH\tCONTENT")
	for _, e := range rep.Entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Format(time.RFC3339), e.Type, e.Sender, e.Hash[:16], e.Content)
	}
	tw.Flush()
	if rep.Valid {
		fmt.Fprintf(a.stdout, "valid: %d records, every signature and hash verified\n", len(rep.Entries))
	}
}

// readPassword reads the first line of r, without its line ending. A
// password never comes from a flag, where ps and shell history would show it.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("--password-stdin: standard input holds no password")
	}
	return line, nil
}
