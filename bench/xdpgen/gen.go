package xdpgen

// The Makefile's generate target pins the compiler and flags.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc ${BPF_CLANG} -cflags ${BPF_CFLAGS} -target bpfel -go-package xdpgen xdpgen xdpgen.c -- -I/usr/include/x86_64-linux-gnu
