package control

import (
	"fmt"
	"log/slog"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
)

// speakerRole is anycast's BGP speaker when no VTEP's speaker carries it.
type speakerRole struct {
	sp  bgp.Speaker
	cfg *config.BGPConfig // as started: the ASN and router ID stay until a restart
}

// startSpeaker starts c's speaker; received sees every update.
func startSpeaker(c *config.Config, received func([]bgp.Update), log *slog.Logger) (*speakerRole, error) {
	sp := newSpeaker(log)
	if err := sp.Start(speakerConfig(c, false), received); err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	return &speakerRole{sp: sp, cfg: c.BGP}, nil
}

func (s *speakerRole) Reload(old, next *config.Config) ([]feature.Step, error) {
	return []feature.Step{{Name: "bgp", Do: func() error { return s.sp.Reconfigure(speakerConfig(next, false)) },
		Undo: func() { s.sp.Reconfigure(speakerConfig(old, false)) }}}, nil
}

func (s *speakerRole) Events() []feature.Event { return nil }

func (s *speakerRole) Status(st *client.Status) { st.BGP = speakerStatus(s.sp, s.cfg) }

func (s *speakerRole) Close(bool) { s.sp.Stop(false) }

// speakerStatus is pwctl bgp's state of a speaker running bgp section c.
func speakerStatus(sp bgp.Speaker, c *config.BGPConfig) *client.BGP {
	b := bgpStatus(sp)
	b.ASN, b.RouterID = c.ASN, c.RouterID.String()
	return b
}
