package bpf

// The Makefile's generate target pins the compiler and flags (BPF_CLANG,
// BPF_CFLAGS); the generated Go file and object are committed.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc ${BPF_CLANG} -cflags ${BPF_CFLAGS} -target bpfel -go-package bpf pwgate pwgate.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc ${BPF_CLANG} -cflags ${BPF_CFLAGS} -target bpfel -go-package bpf anycast anycast.c -- -I/usr/include/x86_64-linux-gnu
