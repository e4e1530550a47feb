package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// configTimeout bounds a config request: a reload may resolve WireGuard
// endpoint names.
const configTimeout = time.Minute

const configUsage = `usage: pwctl config apply FILE|- [--confirm DURATION] [-m MESSAGE]
       pwctl config confirm
       pwctl config rollback N [--confirm DURATION] [-m MESSAGE]
       pwctl config history [--json]
       pwctl config diff [N [M]]
       pwctl config show [N]

  apply     check FILE as pwgated --check does, keep the running file as a
            revision, install FILE and reload; with --confirm (such as 10m),
            the previous file comes back by itself unless "pwctl config
            confirm" comes within that time, also across a reboot
  confirm   keep the change applied with --confirm
  rollback  apply revision N again (the same checks; --confirm works too)
  history   the kept revisions (the last 50): when, who, why
  diff      from revision N (default: the one before the running file) to
            revision M (default: the running file)
  show      revision N, or the running file
`

// configCmd runs pwctl config VERB.
func configCmd(args []string, socket string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("pwctl config "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, configUsage) }
	confirm := fs.Duration("confirm", 0, "roll back unless confirmed within `duration`")
	message := fs.String("m", "", "a one-line `message` kept with the revision")
	asJSON := fs.Bool("json", false, "print JSON")
	operands, ok := parseInterspersed(fs, args[1:]) // pwctl config apply new.yaml --confirm 10m
	if !ok {
		return 2
	}
	req := client.ConfigRequest{Verb: verb, Confirm: confirm.Seconds(), Message: *message, Who: who()}
	nums := func(max int) bool {
		if len(operands) > max {
			fmt.Fprintf(stderr, "pwctl config %s: unexpected argument %q\n", verb, operands[max])
			return false
		}
		for i, o := range operands {
			n, err := strconv.Atoi(o)
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "pwctl config %s: %q is not a revision number (pwctl config history)\n", verb, o)
				return false
			}
			if i == 0 {
				req.N = n
			} else {
				req.M = n
			}
		}
		return true
	}
	switch verb {
	case "apply":
		if len(operands) != 1 {
			fmt.Fprintln(stderr, "pwctl config apply: want one FILE, or - for standard input")
			return 2
		}
		b, err := readFile(operands[0], stdin)
		if err != nil {
			fmt.Fprintf(stderr, "pwctl config apply: %v\n", err)
			return 1
		}
		req.File = string(b)
	case "rollback":
		if len(operands) != 1 || !nums(1) {
			fmt.Fprintln(stderr, "pwctl config rollback: want a revision number N")
			return 2
		}
	case "diff":
		if !nums(2) {
			return 2
		}
	case "show":
		if !nums(1) {
			return 2
		}
	case "confirm", "history":
		if !nums(0) {
			return 2
		}
	default:
		fmt.Fprintf(stderr, "pwctl config: unknown request %q\n", verb)
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	a, err := client.ConfigDo(socket, req, configTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "pwctl config %s: %v\n", verb, err)
		return 1
	}
	switch verb {
	case "apply", "rollback":
		fmt.Fprintf(stdout, "applied: revision %d runs\n", a.Revision)
		if p := a.Pending; p != nil {
			fmt.Fprintf(stdout, "unless \"pwctl config confirm\" comes by %s (in %v), revision %d comes back\n",
				p.Deadline.Local().Format(time.TimeOnly), time.Until(p.Deadline).Round(time.Second), p.Rollback)
		}
	case "confirm":
		fmt.Fprintf(stdout, "confirmed: revision %d stays\n", a.Revision)
	case "history":
		if *asJSON {
			json.NewEncoder(stdout).Encode(a)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "REV\tTIME\tWHO\tMESSAGE")
		for _, r := range a.History {
			mark := ""
			switch {
			case a.Pending != nil && r.N == a.Pending.Revision:
				mark = fmt.Sprintf("  [running, unconfirmed: revision %d comes back at %s]", a.Pending.Rollback, a.Pending.Deadline.Local().Format(time.TimeOnly))
			case r.Running:
				mark = "  [running]"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s%s\n", r.N, r.Time.Local().Format("2006-01-02 15:04:05"), dash(r.Who), dash(r.Message), mark)
		}
		tw.Flush()
	case "diff":
		if a.Text == "" {
			fmt.Fprintln(stdout, "no difference")
		}
		fmt.Fprint(stdout, a.Text)
	case "show":
		fmt.Fprint(stdout, a.Text)
	}
	return 0
}

// readFile reads name, or standard input for "-", refusing more than
// pwgated takes.
func readFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, client.MaxConfigFile+1))
	if err == nil && len(b) > client.MaxConfigFile {
		err = fmt.Errorf("%s is larger than %d bytes", name, client.MaxConfigFile)
	}
	return b, err
}

// who says who applies a change, for the history: the user (the one
// behind sudo), and over SSH where from and, when sshd exposes it
// (ExposeAuthInfo, as the appliance's does), the comment of the key used.
func who() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if conn := strings.Fields(os.Getenv("SSH_CONNECTION")); len(conn) > 0 {
		name += " from " + conn[0]
	}
	if c := sshKeyComment(os.Getenv("SSH_USER_AUTH"), "/config/authorized_keys", os.ExpandEnv("$HOME/.ssh/authorized_keys")); c != "" {
		name += " (key " + c + ")"
	}
	return name
}

// sshKeyComment finds the key sshd says it accepted (the file named by
// SSH_USER_AUTH: "publickey TYPE BASE64") in the authorized keys files and
// returns its comment.
func sshKeyComment(authInfo string, files ...string) string {
	if authInfo == "" {
		return ""
	}
	b, err := os.ReadFile(authInfo)
	if err != nil {
		return ""
	}
	var key string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "publickey" {
			key = f[2]
		}
	}
	if key == "" {
		return ""
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			for i, w := range fs {
				if w == key && i+1 < len(fs) {
					f.Close()
					return strings.Join(fs[i+1:], " ")
				}
			}
		}
		f.Close()
	}
	return ""
}

// parseInterspersed parses args with fs, flags before, between or after
// the operands, and returns the operands; false after a bad flag (fs has
// said why).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, bool) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			return operands, true
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
