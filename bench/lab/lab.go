// Package lab builds network-namespace topologies for pwgate's integration
// tests, demo and benchmarks, and tears them down again, also after a
// failure: every namespace it makes carries its prefix, every process it
// starts is killed, and Close removes both.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Lab is a set of namespaces and processes with a common name prefix.
type Lab struct {
	Prefix string
	Log    func(format string, args ...any) // nil: quiet
	// Detach starts processes in a session of their own, without the
	// signal that kills them when the builder exits, writing their output
	// to NS-PROGRAM.log files in LogDir: for labs that stay up.
	Detach bool
	LogDir string

	mu    sync.Mutex
	ns    []string
	procs []*Proc
}

// New returns an empty lab whose namespaces are named prefix+name. The
// calling process becomes a child subreaper, so that what the lab's
// processes leave orphaned (radvd's privilege-separation child) is reaped
// by Close rather than left to an init that may not reap.
func New(prefix string) *Lab {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	return &Lab{Prefix: prefix}
}

// NS returns the full name of namespace name.
func (l *Lab) NS(name string) string { return l.Prefix + name }

func (l *Lab) logf(format string, args ...any) {
	if l.Log != nil {
		l.Log(format, args...)
	}
}

// AddNS creates namespace name with its loopback up.
func (l *Lab) AddNS(names ...string) error {
	for _, name := range names {
		full := l.NS(name)
		if _, err := run("ip", "netns", "add", full); err != nil {
			return err
		}
		l.mu.Lock()
		l.ns = append(l.ns, full)
		l.mu.Unlock()
		if _, err := l.Exec(name, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a command inside namespace ns ("" for the lab's host namespace)
// and returns its combined output.
func (l *Lab) Exec(ns string, argv ...string) (string, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", l.NS(ns)}, argv...)
	}
	l.logf("%s", strings.Join(argv, " "))
	return run(argv[0], argv[1:]...)
}

// Script runs commands (split on spaces) in namespace ns in order and stops
// at the first that fails.
func (l *Lab) Script(ns string, cmds ...string) error {
	for _, c := range cmds {
		if _, err := l.Exec(ns, strings.Fields(c)...); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Veth creates a veth pair: ifA in namespace nsA and ifB in nsB, both up,
// with the given MTU (0 for the default).
func (l *Lab) Veth(nsA, ifA, nsB, ifB string, mtu int) error {
	args := []string{"ip", "link", "add", ifA, "netns", l.NS(nsA)}
	if mtu > 0 {
		args = append(args, "mtu", fmt.Sprint(mtu))
	}
	args = append(args, "type", "veth", "peer", "name", ifB, "netns", l.NS(nsB))
	if mtu > 0 {
		args = append(args, "mtu", fmt.Sprint(mtu))
	}
	if _, err := l.Exec("", args...); err != nil {
		return err
	}
	if _, err := l.Exec(nsA, "ip", "link", "set", "dev", ifA, "up"); err != nil {
		return err
	}
	_, err := l.Exec(nsB, "ip", "link", "set", "dev", ifB, "up")
	return err
}

// Proc is a process started in a namespace.
type Proc struct {
	Cmd  *exec.Cmd
	Out  *SyncBuffer
	done chan struct{}
	err  error
}

// Start starts a long-running command in namespace ns; Close kills it.
func (l *Lab) Start(ns string, argv ...string) (*Proc, error) {
	prog := filepath.Base(argv[0])
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", l.NS(ns)}, argv...)
	}
	l.logf("start: %s", strings.Join(argv, " "))
	p := &Proc{Cmd: exec.Command(argv[0], argv[1:]...), Out: new(SyncBuffer), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	// A process group of its own, so that a kill reaches its children too.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if l.Detach {
		f, err := os.Create(filepath.Join(l.LogDir, ns+"-"+prog+".log"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		p.Cmd.Stdout, p.Cmd.Stderr = f, f
		p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if it was killed by a signal).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return ee.ExitCode(), nil
		}
		if p.err != nil {
			return -1, p.err
		}
		return 0, nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("process %d still running after %v", p.Cmd.Process.Pid, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proc) kill() {
	if !p.Exited() {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Close kills the processes and deletes the namespaces, returning the
// first error met; it keeps going after errors.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs, nss := l.procs, l.ns
	l.procs, l.ns = nil, nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].kill()
	}
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if _, err := run("ip", "netns", "del", nss[i]); err != nil {
			errs = append(errs, err)
		}
		os.RemoveAll(filepath.Join(FRRRunDir, nss[i]))
	}
	if len(procs) > 0 {
		reapOrphans()
	}
	return errors.Join(errs...)
}

// reapOrphans waits, briefly, for the children this process inherited as a
// subreaper. It runs after the lab's own processes have been waited for.
func reapOrphans() {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err != nil: // ECHILD: no children left
			return
		case pid == 0: // children still running
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Leftovers lists namespaces whose names start with prefix: what a crashed
// run left behind.
func Leftovers(prefix string) ([]string, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var left []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			left = append(left, f[0])
		}
	}
	return left, nil
}

// Do runs f on an OS thread switched into namespace ns, for Go code that
// opens sockets or links inside the lab. The thread is returned to its
// original namespace afterwards.
func (l *Lab) Do(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(l.NS(ns))
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", l.NS(ns), err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread() // otherwise the thread dies with the goroutine
		}
		errc <- err
	}()
	return <-errc
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// IsRoot reports whether the process may build labs.
func IsRoot() bool { return os.Geteuid() == 0 }

// Teardown removes what a lab with this prefix left, even one built by
// another process: every process inside its namespaces gets SIGTERM (so
// that pwgated detaches cleanly), then SIGKILL, and the namespaces are
// deleted.
func Teardown(prefix string) error {
	nss, err := Leftovers(prefix)
	if err != nil {
		return err
	}
	pids := map[int]bool{}
	for _, ns := range nss {
		out, _ := run("ip", "netns", "pids", ns)
		for _, f := range strings.Fields(out) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				pids[pid] = true
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for pid := range pids {
			if syscall.Kill(pid, 0) != nil {
				delete(pids, pid)
			}
		}
	}
	for pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var errs []error
	for _, ns := range nss {
		if _, err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
		os.RemoveAll(filepath.Join(FRRRunDir, ns))
	}
	return errors.Join(errs...)
}

// Forget stops tracking the lab's namespaces and processes, so that Close
// leaves them running: for a lab that outlives its builder (started with
// Detach), which Teardown removes later.
func (l *Lab) Forget() {
	l.mu.Lock()
	l.ns, l.procs = nil, nil
	l.mu.Unlock()
}

// OnePort returns a lab with namespace "x" holding ul0 and its veth peer
// ulp, both up: a port for tests of what pwgated reads from or sets in
// the kernel. It skips t unless run as root and without -short; t's
// cleanup closes the lab.
func OnePort(t testing.TB, prefix string) *Lab {
	t.Helper()
	if testing.Short() || !IsRoot() {
		t.Skip("privileged test: needs root for network namespaces, and not -short")
	}
	l := New(fmt.Sprintf("%s%d-", prefix, os.Getpid()))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "ul0", "x", "ulp", 0); err != nil {
		t.Fatal(err)
	}
	return l
}

// SendRaw sends frames out of ifname from an AF_PACKET socket (in the
// calling thread's namespace: call it inside Do), 20 ms apart.
func SendRaw(ifname string, frames ...[]byte) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	for _, f := range frames {
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("send %d bytes on %s: %w", len(f), ifname, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
