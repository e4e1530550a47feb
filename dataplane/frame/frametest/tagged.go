package frametest

import "encoding/binary"

// Tagged returns six VLAN-tagged frames from src to 02:dd:00:00:00:01:
// 802.1Q and 802.1ad+802.1Q (QinQ), each 64, 1000 and 1600 bytes long
// (1600 is split on a 1500-byte uplink), with VLAN IDs 100 to 105, a local
// experimental EtherType, and each byte of the payload its offset.
func Tagged(src []byte) [][]byte {
	var frames [][]byte
	for _, tags := range [][]uint16{{0x8100}, {0x88a8, 0x8100}} {
		for _, size := range []int{64, 1000, 1600} {
			f := append([]byte{0x02, 0xdd, 0, 0, 0, 1}, src...)
			for _, tpid := range tags {
				f = binary.BigEndian.AppendUint16(f, tpid)
				f = binary.BigEndian.AppendUint16(f, 100+uint16(len(frames)))
			}
			f = binary.BigEndian.AppendUint16(f, 0x88b5) // local experimental EtherType
			for len(f) < size {
				f = append(f, byte(len(f)))
			}
			frames = append(frames, f)
		}
	}
	return frames
}
