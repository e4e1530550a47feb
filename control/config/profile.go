package config

import "github.com/pwgate/pwgate/hw"

// UseProfile takes a hardware profile's cores and poll mode where the
// configuration does not set them itself.
func (c *Config) UseProfile(p hw.Profile) error {
	for _, k := range []struct {
		key  string
		dst  *int
		core int
	}{{"cores.main", &c.CoreMain, p.CoreMain}, {"cores.encap", &c.CoreEncap, p.CoreEncap}, {"cores.decap", &c.CoreDecap, p.CoreDecap}} {
		if !c.IsSet(k.key) {
			*k.dst = k.core
		}
	}
	if !c.IsSet("poll") {
		m, err := ParsePollMode(p.Poll)
		if err != nil {
			return err
		}
		c.Poll = m
	}
	return nil
}
