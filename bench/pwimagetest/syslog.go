package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
)

// syslogServer receives syslog messages on 127.0.0.1 in the vms
// namespace (the VMs' 10.0.2.2): RFC 5426 datagrams on udpPort, RFC 6587
// octet-counted TCP on tcpPort.
type syslogServer struct {
	udp net.PacketConn
	tcp net.Listener
	mu  sync.Mutex
	got map[string][]string // by protocol, the messages (the first 10,000)
}

const syslogUDPPort, syslogTCPPort = 5514, 6514

func serveSyslog(l *lab.Lab) (*syslogServer, error) {
	s := &syslogServer{got: map[string][]string{}}
	err := l.Do("vms", func() (err error) {
		if s.udp, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", syslogUDPPort)); err != nil {
			return err
		}
		s.tcp, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", syslogTCPPort))
		return err
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("the lab's syslog server: %w", err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := s.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			s.add("udp", string(buf[:n]))
		}
	}()
	go func() {
		for {
			c, err := s.tcp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					m, err := readOctetCounted(r)
					if err != nil {
						return
					}
					s.add("tcp", m)
				}
			}()
		}
	}()
	return s, nil
}

func (s *syslogServer) add(proto, m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got[proto]) < 10000 {
		s.got[proto] = append(s.got[proto], m)
	}
}

// find returns the first message over proto that parses as RFC 5424 and
// whose APP-NAME is app and MSG contains text.
func (s *syslogServer) find(proto, app, text string) (rfc5424, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, raw := range s.got[proto] {
		if m, err := parse5424(raw); err == nil && m.app == app && strings.Contains(m.msg, text) {
			return m, true
		}
	}
	return rfc5424{}, false
}

func (s *syslogServer) count(proto string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[proto])
}

func (s *syslogServer) Close() error {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	return nil
}

// readOctetCounted reads one RFC 6587 octet-counted frame: MSG-LEN SP MSG.
func readOctetCounted(r *bufio.Reader) (string, error) {
	n := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == ' ' {
			break
		}
		if c < '0' || c > '9' || n > 1<<20 {
			return "", fmt.Errorf("not octet-counted framing (byte %q)", c)
		}
		n = n*10 + int(c-'0')
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return string(b), err
}

// rfc5424 is a syslog message's header fields (RFC 5424, section 6).
type rfc5424 struct {
	pri                      int
	time                     time.Time
	host, app, procid, msgid string
	msg                      string
}

// parse5424 reads "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG".
func parse5424(raw string) (rfc5424, error) {
	var m rfc5424
	if !strings.HasPrefix(raw, "<") {
		return m, errors.New("no PRI")
	}
	end := strings.Index(raw, ">")
	if end < 2 || end > 4 {
		return m, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(raw[1:end])
	if err != nil || pri > 191 {
		return m, errors.New("bad PRI")
	}
	m.pri = pri
	f := strings.SplitN(raw[end+1:], " ", 7)
	if len(f) < 7 || f[0] != "1" {
		return m, errors.New("not version 1")
	}
	if m.time, err = time.Parse(time.RFC3339Nano, f[1]); err != nil {
		return m, fmt.Errorf("TIMESTAMP: %w", err)
	}
	m.host, m.app, m.procid, m.msgid = f[2], f[3], f[4], f[5]
	rest := f[6]
	if strings.HasPrefix(rest, "-") {
		rest = strings.TrimPrefix(rest, "-")
	} else if strings.HasPrefix(rest, "[") {
		i := strings.Index(rest, "] ")
		if i < 0 {
			return m, errors.New("bad STRUCTURED-DATA")
		}
		rest = rest[i+1:]
	} else {
		return m, errors.New("no STRUCTURED-DATA")
	}
	m.msg = strings.TrimPrefix(strings.TrimPrefix(rest, " "), "\ufeff")
	return m, nil
}

// checkSyslog checks that vm a's journal reaches the lab's syslog server
// over both protocols as /config/syslog.yaml says: pwgated's start (logged
// at boot, before the network was up) in RFC 5424's format, its host name
// from the file, its time right; and a message logged now arrives within
// seconds.
func checkSyslog(logs *syslogServer, ssh func(string) (string, error)) error {
	var m rfc5424
	for _, proto := range []string{"udp", "tcp"} {
		var ok bool
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
			if m, ok = logs.find(proto, "pwgated", "started"); ok || time.Now().After(deadline) {
				break
			}
		}
		if !ok {
			st, _ := ssh("systemctl status pwgate-syslog --no-pager; cat /run/pwgate-syslog/rsyslog.conf")
			return fmt.Errorf("no RFC 5424 message of pwgated's start over %s in 2 minutes (%d messages)\n%s", proto, logs.count(proto), st)
		}
		if m.host != "site-a" {
			return fmt.Errorf("over %s: HOSTNAME %q, want site-a (syslog.yaml)", proto, m.host)
		}
		if d := time.Since(m.time); d < 0 || d > 30*time.Minute {
			return fmt.Errorf("over %s: TIMESTAMP %v, %v from the lab's clock", proto, m.time, d)
		}
		fmt.Printf("pwimagetest: vm a: syslog over %s: <%d>1 %s %s %s %s %s %s\n", proto, m.pri, m.time.Format(time.RFC3339Nano), m.host, m.app, m.procid, m.msgid, m.msg)
	}
	mark := fmt.Sprintf("pwimagetest mark %d", time.Now().UnixNano())
	sent := time.Now()
	if out, err := ssh("logger -t pwimagetest -p user.notice '" + mark + "'"); err != nil {
		return fmt.Errorf("logger: %v %s", err, out)
	}
	for _, proto := range []string{"udp", "tcp"} {
		for {
			if m, ok := logs.find(proto, "pwimagetest", mark); ok {
				if m.pri != 8+5 { // user.notice
					return fmt.Errorf("over %s: PRI %d, want 13 (user.notice)", proto, m.pri)
				}
				break
			}
			if time.Since(sent) > 30*time.Second {
				return fmt.Errorf("a message logged now did not arrive over %s within 30 s", proto)
			}
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Printf("pwimagetest: vm a: syslog over %s: a message logged now arrived %v later\n", proto, time.Since(sent).Round(10*time.Millisecond))
	}
	return nil
}
