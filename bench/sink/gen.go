package sink

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc ${BPF_CLANG} -cflags ${BPF_CFLAGS} -target bpfel -go-package sink sink sink.c -- -I/usr/include/x86_64-linux-gnu
