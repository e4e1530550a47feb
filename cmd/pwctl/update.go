package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/update"
)

const updateUsage = `usage: pwctl update FILE|- [--tries N] [--no-reboot] [--allow-downgrade]
       pwctl update --status [--json]
       pwctl update check-boot [--deadline D] [--want bpdu,bgp]
       pwctl update pin-machine-id
       pwctl update genkey | pwctl update pubkey
       pwctl update pack --version V --serial N [--key FILE] --out FILE ROOT.SQFS VMLINUZ INITRD
       pwctl update entry SLOT VERSION GENERATION

  FILE        writes the update bundle (- : standard input, as in
              ssh box pwctl update - < pwgate.update) into the slot not
              booted, checks every file's SHA-256 (and the signature if
              /config/update.pub holds a key), marks the slot for N trial
              boots (1) and reboots into it; the slot is blessed once
              pwgated is healthy, else the box comes back on this slot.
              Refused while /config is not mounted (it says whether
              bundles must be signed), and for a build older than the
              running one (a lower serial; the same build installs)
  --allow-downgrade  installs an older build all the same
  --status    the slots, their versions and states, and the last update
  check-boot  run by pwgate-boot-check.service on a trial boot: waits up
              to D (5m) for pwgated to be ready (and for the far site's
              BPDUs, or every BGP session, with --want); fails otherwise,
              and the unit reboots into the other slot
  pin-machine-id  run by pwgate-machine-id.service at boot: keeps the box's
              machine ID on the data partition and on every slot's kernel
              command line (the root is read-only)
  genkey      an Ed25519 signing key (keep it off the box); pubkey gives
              its public half for /config/update.pub
  pack, entry used by the image build (make image); pack's --serial is
              the build's serial (make image: the commit's time in seconds,
              SOURCE_DATE_EPOCH); 0 leaves it out, for boxes whose pwctl
              predates serials (newer boxes take such a bundle only with
              --allow-downgrade)
`

// updateVerbs are the operands that are not a bundle's file name.
var updateVerbs = map[string]bool{"check-boot": true, "pin-machine-id": true, "genkey": true, "pubkey": true, "pack": true, "entry": true}

// updateCmd is pwctl update.
func updateCmd(args []string, socket string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pwctl update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, updateUsage) }
	status := fs.Bool("status", false, "show the slots and the last update")
	asJSON := fs.Bool("json", false, "print JSON (with --status)")
	tries := fs.Int("tries", 1, "trial boots before the box falls back")
	noReboot := fs.Bool("no-reboot", false, "do not reboot after writing the slot")
	allowDowngrade := fs.Bool("allow-downgrade", false, "install a bundle older (a lower serial) than the running root")
	deadline := fs.Duration("deadline", 5*time.Minute, "check-boot: how long a trial boot has to become healthy")
	want := fs.String("want", "", "check-boot: also wait for bpdu (the far site's BPDUs) and/or bgp (every session up)")
	version := fs.String("version", "", "pack: the version the bundle carries")
	serial := fs.Int64("serial", -1, "pack: the bundle's serial, larger for a later build (0: none)")
	keyFile := fs.String("key", "", "pack: sign with the private key in `file` (from pwctl update genkey)")
	out := fs.String("out", "", "pack: write the bundle to `file`")
	root := fs.String("root", "", "prefix of the appliance's paths (/efi, /dev/disk/by-partlabel, …), for tests")
	operands, ok := parseInterspersed(fs, args) // pwctl update FILE --no-reboot
	if !ok {
		return 2
	}
	sys := update.Appliance()
	if *root != "" {
		for _, p := range []*string{&sys.ESP, &sys.Parts, &sys.Cmdline, &sys.State, &sys.PublicKey, &sys.Mountinfo, &sys.Release, &sys.EFIVars, &sys.MachineID, &sys.Journal} {
			*p = filepath.Join(*root, *p)
		}
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stdout, "pwctl update: "+f+"\n", a...) }
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "pwctl update: %v\n", err)
		return code
	}
	if *status {
		if len(operands) > 0 {
			return fail(2, fmt.Errorf("--status takes no operand"))
		}
		st, err := sys.Status()
		if err != nil {
			return fail(1, err)
		}
		printUpdateStatus(stdout, st, *asJSON)
		return 0
	}
	if len(operands) == 0 {
		fmt.Fprint(stderr, updateUsage)
		return 2
	}
	switch op := operands[0]; {
	case op == "check-boot" && len(operands) == 1:
		wants, err := update.ParseWants(*want)
		if err != nil {
			return fail(2, err)
		}
		health := func() (bool, string) {
			st, err := client.FetchStatus(socket, timeout)
			if err != nil {
				return false, err.Error()
			}
			return update.Healthy(st, wants)
		}
		if err := sys.CheckBoot(*deadline, 2*time.Second, health, logf); err != nil {
			return fail(1, err)
		}
		return 0
	case op == "pin-machine-id" && len(operands) == 1:
		b, err := os.ReadFile(filepath.Join(*root, "/etc/machine-id"))
		if err != nil {
			return fail(1, err)
		}
		if err := sys.PinMachineID(strings.TrimSpace(string(b)), logf); err != nil {
			return fail(1, err)
		}
		return 0
	case op == "genkey" && len(operands) == 1:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fail(1, err)
		}
		fmt.Fprintln(stdout, update.EncodeKey(k.Seed()))
		return 0
	case op == "pubkey" && len(operands) == 1:
		b, err := io.ReadAll(io.LimitReader(stdin, 1024))
		if err != nil {
			return fail(1, err)
		}
		seed, err := update.DecodeKey(string(b), ed25519.SeedSize)
		if err != nil {
			return fail(1, fmt.Errorf("a private key on standard input: %w", err))
		}
		fmt.Fprintln(stdout, update.EncodeKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)))
		return 0
	case op == "pack" && len(operands) == 4:
		if *out == "" {
			return fail(2, fmt.Errorf("pack: --out FILE is required"))
		}
		if *serial < 0 {
			return fail(2, fmt.Errorf("pack: --serial N is required (make image: the commit's time, SOURCE_DATE_EPOCH; 0: none)"))
		}
		var key ed25519.PrivateKey
		if *keyFile != "" {
			b, err := os.ReadFile(*keyFile)
			if err != nil {
				return fail(1, err)
			}
			seed, err := update.DecodeKey(string(b), ed25519.SeedSize)
			if err != nil {
				return fail(1, fmt.Errorf("%s: %w", *keyFile, err))
			}
			key = ed25519.NewKeyFromSeed(seed)
		}
		f, err := os.Create(*out)
		if err != nil {
			return fail(1, err)
		}
		err = update.Pack(f, *version, *serial, operands[1:], key)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*out)
			return fail(1, err)
		}
		return 0
	case op == "entry" && len(operands) == 4:
		gen, err := strconv.Atoi(operands[3])
		if err != nil || (operands[1] != "a" && operands[1] != "b") {
			return fail(2, fmt.Errorf("entry: want SLOT (a or b) VERSION GENERATION (a number)"))
		}
		fmt.Fprint(stdout, update.EntryText(operands[1], operands[2], gen, ""))
		return 0
	case len(operands) == 1 && !updateVerbs[op]:
		in := stdin
		if op != "-" {
			f, err := os.Open(op)
			if err != nil {
				return fail(1, err)
			}
			defer f.Close()
			in = f
		}
		if _, err := sys.InstallWith(in, update.Options{Tries: *tries, AllowDowngrade: *allowDowngrade}, logf); err != nil {
			return fail(1, fmt.Errorf("%w (the booted slot is unchanged and stays the one that boots)", err))
		}
		if *noReboot {
			logf("not rebooting (--no-reboot): the new slot is tried at the next boot")
			return 0
		}
		logf("rebooting into the new slot")
		if b, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
			return fail(1, fmt.Errorf("systemctl reboot: %v: %s", err, b))
		}
		return 0
	default:
		fmt.Fprint(stderr, updateUsage)
		return 2
	}
}

func printUpdateStatus(w io.Writer, st update.Status, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(w, string(b))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "booted:\tslot %s\n", st.Booted)
	fmt.Fprintf(tw, "boots next:\tslot %s\n", st.Next)
	for _, slot := range update.Slots {
		e, ok := st.Entries[slot]
		if !ok {
			fmt.Fprintf(tw, "slot %s:\tno boot entry (empty, or being written)\n", slot)
			continue
		}
		fmt.Fprintf(tw, "slot %s:\tpwgate %s, generation %d, %s\t%s\n", slot, e.Version, e.Generation, st.States[slot], e.File)
	}
	if r := st.Last; r != nil {
		signed := "unsigned"
		if r.Signed {
			signed = "signature checked"
		}
		serial := ""
		if r.Serial > 0 {
			serial = fmt.Sprintf(" (serial %d)", r.Serial)
		}
		fmt.Fprintf(tw, "last update:\t%s, pwgate %s%s into slot %s (from slot %s), %s\n", r.Started.Format(time.RFC3339), r.Version, serial, r.To, r.From, signed)
		fmt.Fprintf(tw, "outcome:\t%s\n", st.Outcome)
	} else {
		fmt.Fprintf(tw, "last update:\tnone\n")
	}
	tw.Flush()
}
