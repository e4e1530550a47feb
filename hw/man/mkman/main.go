// Command mkman writes the appliance's man pages from the manuals in the
// repository: pwgated.yaml(5) from cmd/pwgated/README.md and pwctl(1) from
// cmd/pwctl/README.md, gzipped, under -out/man5 and -out/man1.
//
//	go run ./hw/man/mkman -out bin/man -version 1.2
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pwgate/pwgate/hw/man"
)

// pages are the man pages and the manuals they are made from, relative to
// the repository's root.
var pages = []struct {
	src  string
	page man.Page
}{
	{"cmd/pwgated/README.md", man.Page{Name: "pwgated.yaml", Section: 5}},
	{"cmd/pwctl/README.md", man.Page{Name: "pwctl", Section: 1}},
}

func main() {
	out := flag.String("out", "bin/man", "directory to write man1/, man5/ into")
	root := flag.String("root", ".", "the repository's root")
	version := flag.String("version", "dev", "pwgate's version, shown in each page's footer")
	flag.Parse()
	if err := run(*root, *out, *version); err != nil {
		fmt.Fprintf(os.Stderr, "mkman: %v\n", err)
		os.Exit(1)
	}
}

func run(root, out, version string) error {
	for _, p := range pages {
		md, err := os.ReadFile(filepath.Join(root, p.src))
		if err != nil {
			return err
		}
		p.page.Source, p.page.Manual = "pwgate "+version, "pwgate manual"
		dir := filepath.Join(out, "man"+strconv.Itoa(p.page.Section))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, p.page.Name+"."+strconv.Itoa(p.page.Section)+".gz"))
		if err != nil {
			return err
		}
		z, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
		_, err = z.Write(man.Render(md, p.page))
		if cerr := z.Close(); err == nil {
			err = cerr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
