package main

import (
	"fmt"
	"io"
	"os"

	"github.com/pwgate/pwgate/control/revision"
	"github.com/pwgate/pwgate/hw/syslog"
)

const syslogUsage = `usage: pwctl syslog check FILE
       pwctl syslog rsyslog FILE [OUT]

  check    check FILE (syslog.yaml: the syslog servers the journal goes to)
           and say what it sends where
  rsyslog  check FILE and write rsyslogd's configuration for it to OUT
           (replaced whole, or left as it was) or to the standard output;
           pwgate-syslog.service runs this before rsyslogd
`

// syslogCmd runs pwctl syslog VERB.
func syslogCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || len(args) > 3 || args[0] != "check" && args[0] != "rsyslog" || args[0] == "check" && len(args) != 2 {
		fmt.Fprint(stderr, syslogUsage)
		return 2
	}
	file := args[1]
	c, err := readSyslog(file)
	if err != nil {
		fmt.Fprintf(stderr, "pwctl: %s: %v\n", file, err)
		return 2
	}
	switch {
	case args[0] == "check":
		fmt.Fprint(stdout, c.Summary())
	case len(args) == 3:
		err = revision.WriteFile(args[2], []byte(c.Rsyslog(file)), 0o644)
	default:
		_, err = io.WriteString(stdout, c.Rsyslog(file))
	}
	if err != nil {
		fmt.Fprintf(stderr, "pwctl: %v\n", err)
		return 1
	}
	return 0
}

// readSyslog reads and checks syslog.yaml (Parse refuses one too long;
// more is not read).
func readSyslog(file string) (*syslog.Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, syslog.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return syslog.Parse(b)
}
