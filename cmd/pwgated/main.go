// Command pwgated is the pwgate appliance: it carries every Ethernet frame
// between its downlink (LAN) port and a peer on the far side of its uplink
// (access network) port, wire-compatible with ginzado-pseudowire.
//
//	pwgated --config /etc/pwgate/pwgated.yaml [--profile in-1]
//	pwgated --gpw-config /etc/gpw.conf --downlink enp1s0 --uplink enp2s0
//
// SIGHUP reloads the configuration; SIGTERM or SIGINT stop it cleanly.
// Exit status: 0 after a clean stop, 2 when the configuration or the
// machine does not allow starting (nothing is left attached), 1 for a
// failure while running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/pwgate/pwgate/control"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/hw"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Collect at half again the live heap, not twice it: BGP updates
		// are the only garbage (the data path allocates nothing), and on a
		// 4 GiB box a neighbor's burst of routes should not double the
		// daemon's memory.
		debug.SetGCPercent(50)
	}
	os.Exit(run())
}

func run() int {
	var (
		configFile = flag.String("config", "", "YAML configuration `file`")
		gpwConfig  = flag.String("gpw-config", "", "the reference's (ginzado-pseudowire's) configuration `file`, used unchanged")
		downlink   = flag.String("downlink", "", "downlink `interface` (with --gpw-config)")
		uplink     = flag.String("uplink", "", "uplink `interface` (with --gpw-config)")
		profile    = flag.String("profile", "", "hardware `profile`: in-1 or c4 (cores, NIC settings), or auto (from DMI and the CPU model; none on another box)")
		check      = flag.Bool("check", false, "check the configuration and exit")
		stopped    = flag.Bool("stopped", false, "run by systemd after pwgated stopped (ExecStopPost): unless it stopped cleanly ($SERVICE_RESULT success), take the LAN port down when the file has downlink.follow_peer")
		cpuprof    = flag.String("cpuprofile", "", "write a CPU profile (pprof) to `file` until exit, for make bench")
		debugAddr  = flag.String("debug-addr", "", "serve Go's profiles (net/http/pprof) on `address` (such as 127.0.0.1:6060), for finding what uses CPU or memory")
		waitPorts  = flag.Duration("wait-ports", 0, "at start, wait up to `duration` for configured ports that are not there yet (a NIC probed late, a device re-added after pwgated exited because its port went away); then a missing port is an error as without it")
		logLevel   = flag.String("log-level", "info", "log `level`: debug (adds the BGP speaker's own detail), info, warn or error")
		version    = flag.Bool("version", false, "print the version and exit")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pwgated --config FILE [--profile NAME] [--check]\n       pwgated --gpw-config FILE --downlink IF --uplink IF\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version {
		fmt.Println("pwgated", client.Version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "pwgated: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pwgated: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	load := func() (*config.Config, error) {
		switch {
		case *configFile != "" && *gpwConfig != "":
			return nil, errors.New("give --config or --gpw-config, not both")
		case *configFile != "":
			return config.LoadFile(*configFile)
		case *gpwConfig != "":
			return config.LoadGPWFile(*gpwConfig, config.Interfaces{Downlink: *downlink, Uplink: *uplink})
		}
		return nil, config.ErrNoConfig
	}
	var prof *hw.Profile
	if *profile == "auto" {
		p, ok, seen := hw.Detect("/sys/class/dmi/id", "/proc/cpuinfo")
		if ok {
			log.Info("hardware profile from the box", "profile", p.Name, "seen", seen)
			prof = &p
		} else {
			log.Warn("no hardware profile fits this box: running without one (generic)", "seen", seen)
		}
	} else if *profile != "" {
		p, err := hw.Lookup(*profile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pwgated: %v\n", err)
			return 2
		}
		prof = &p
	}
	// Reloads read the file again and apply the same profile.
	loadAll := func() (*config.Config, error) {
		c, err := load()
		if err == nil && prof != nil {
			err = c.UseProfile(*prof)
		}
		return c, err
	}
	// A change made with pwctl config apply --confirm that was not
	// confirmed before a reboot, or in its window, is rolled back first.
	if *configFile != "" && !*check && !*stopped {
		if _, err := control.RecoverConfig(*configFile, false, log); err != nil {
			log.Error("pwctl config: cannot look for a change to roll back", "err", err)
		}
	}
	c, err := loadAll()
	if err != nil && *stopped {
		// A file pwgated cannot read names no follow_peer to honour, and
		// pwgated has said why it stopped: nothing to add.
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pwgated: %v\n", err)
		return 2
	}
	if *stopped {
		if err := control.AfterStop(c, os.Getenv("SERVICE_RESULT"), log); err != nil {
			fmt.Fprintf(os.Stderr, "pwgated: %v\n", err)
			return 1
		}
		return 0
	}
	if *check {
		if err := control.CheckCores(c); err != nil {
			fmt.Fprintf(os.Stderr, "pwgated: %v\n", err)
			return 2
		}
		if c.AnycastOnly() {
			fmt.Printf("%s: ok (anycast: %d VIPs to announce, forwarding %v)\n", c.Source, len(c.Anycast.VIPs), c.Anycast.Forward != nil)
			return 0
		}
		extra := ""
		if c.Anycast != nil {
			extra = fmt.Sprintf("; anycast: %d VIPs to announce, forwarding %v", len(c.Anycast.VIPs), c.Anycast.Forward != nil)
		}
		fmt.Printf("%s: ok (%s mode, downlink %s, uplink %s%s)\n", c.Source, c.ModeName(), c.Downlink, c.Uplink, extra)
		return 0
	}
	// Signals are caught before anything is attached, so that a stop
	// request during start-up still detaches everything.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if !control.WaitPorts(ctx, c, *waitPorts, log) {
		return 0 // stopped while waiting
	}
	if prof != nil {
		control.ApplyNIC(*prof, c, log)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pwgated: cpu profile: %v\n", err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *debugAddr != "" {
		ln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pwgated: --debug-addr: %v\n", err)
			return 2
		}
		defer ln.Close()
		go http.Serve(ln, nil) // net/http/pprof's handlers on the default mux
	}
	src := control.Source{Load: loadAll, File: *configFile, Check: func(path string) error {
		c, err := config.LoadFile(path)
		if err == nil && prof != nil {
			err = c.UseProfile(*prof)
		}
		if err == nil {
			err = control.CheckCores(c)
		}
		return err
	}}
	src.Profile = prof
	d, err := control.Start(c, src, log)
	if err != nil && *configFile != "" {
		// Not with a change that waits for confirmation: the previous
		// file, once more.
		if rolled, rerr := control.RecoverConfig(*configFile, true, log); rolled && rerr == nil {
			log.Error("could not start; trying the previous configuration", "err", err)
			if c, err = loadAll(); err == nil {
				d, err = control.Start(c, src, log)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pwgated: %v\n", err)
		return 2
	}
	reload := make(chan struct{})
	go func() {
		for range hup {
			reload <- struct{}{}
		}
	}()
	if err := d.Run(ctx, reload); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}
