// goro's extra benchmarks, Go side: workloads beyond shared/anchors, with the
// same command line and output as bench/anchors.cpp (`name value unit`), so
// scripts/compare-go.sh runs both interleaved.
//
//	go build -o gobench . && ./gobench ctx_tree [n]
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

var workloads = map[string]func(n int){}

func register(name string, f func(n int)) { workloads[name] = f }

func reportMs(name string, start time.Time) {
	el := time.Since(start)
	fmt.Printf("%s %.1f ms\n", name, float64(el.Microseconds())/1000)
}

func reportNs(name string, start time.Time, ops int) {
	el := time.Since(start)
	fmt.Printf("%s %.1f ns/op\n", name, float64(el.Nanoseconds())/float64(ops))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gobench <workload> [n]")
		os.Exit(2)
	}
	f, ok := workloads[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown workload %q\n", os.Args[1])
		os.Exit(2)
	}
	n := 1000000
	if len(os.Args) > 2 {
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "n must be a positive integer")
			os.Exit(2)
		}
		n = v
	}
	f(n)
}
