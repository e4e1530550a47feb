package wg

// GSOOff reports whether the bind has stopped using UDP GSO.
func (b *KernelBind) GSOOff() bool { return b.noGSO.Load() }
