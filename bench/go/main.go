// The Go twins of bench/syncbench.cpp (goro-syncbench): same workloads, same
// command line, same output ("name value unit"). Standard library only.
//
//	go run . <workload> [n]
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const workers = 8

func report(name string, start time.Time, ops int) {
	el := time.Since(start)
	fmt.Printf("%s %.2f ns/op\n", name, float64(el.Nanoseconds())/float64(ops))
}

func rwReadHeavy(n int) {
	var rw sync.RWMutex
	value := 0
	var seen atomic.Int64
	var wg sync.WaitGroup
	per := n / workers
	start := time.Now()
	wg.Add(workers)
	for g := 0; g < workers; g++ {
		go func() {
			local := 0
			for i := 0; i < per; i++ {
				if i%100 == 0 {
					rw.Lock()
					value++
					rw.Unlock()
				} else {
					rw.RLock()
					local += value
					rw.RUnlock()
				}
			}
			seen.Add(int64(local))
			wg.Done()
		}()
	}
	wg.Wait()
	report("rw_read_heavy", start, per*workers)
	if value != workers*((per+99)/100) {
		panic("lost a write")
	}
}

type buffer struct{ bytes [1024]byte }

func poolGetPut(n int) {
	p := sync.Pool{New: func() any { return new(buffer) }}
	var sum atomic.Int64
	var wg sync.WaitGroup
	per := n / workers
	start := time.Now()
	wg.Add(workers)
	for g := 0; g < workers; g++ {
		go func() {
			local := 0
			for i := 0; i < per; i++ {
				b := p.Get().(*buffer)
				b.bytes[0] = byte(i)
				local += int(b.bytes[0])
				p.Put(b)
			}
			sum.Add(int64(local))
			wg.Done()
		}()
	}
	wg.Wait()
	report("pool_getput", start, per*workers)
}

func onceFast(n int) {
	var o sync.Once
	var runs atomic.Int32
	o.Do(func() { runs.Add(1) })
	var wg sync.WaitGroup
	per := n * 100 / workers
	start := time.Now()
	wg.Add(workers)
	for g := 0; g < workers; g++ {
		go func() {
			for i := 0; i < per; i++ {
				o.Do(func() { runs.Add(1) })
			}
			wg.Done()
		}()
	}
	wg.Wait()
	report("once_fast", start, per*workers)
	if runs.Load() != 1 {
		panic("f ran more than once")
	}
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: syncbench <workload> [n]")
		os.Exit(2)
	}
	n := 1000000
	if len(os.Args) == 3 {
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v < workers {
			fmt.Fprintln(os.Stderr, "bad n")
			os.Exit(2)
		}
		n = v
	}
	switch os.Args[1] {
	case "rw_read_heavy":
		rwReadHeavy(n)
	case "pool_getput":
		poolGetPut(n)
	case "once_fast":
		onceFast(n)
	default:
		fmt.Fprintln(os.Stderr, "unknown workload")
		os.Exit(2)
	}
}
