// The sync toolbox's workloads, Go side (goro side: bench/syncbench.cpp,
// goro-syncbench): 8 goroutines share n operations.
//
//	rw_read_heavy  99% RLock/read/RUnlock, 1% Lock/increment/Unlock; ns/op
//	pool_getput    Get/Put pairs on a sync.Pool of 1 KiB buffers; ns/op
//	once_fast      100n calls of Do on a Once that is done; ns/op
package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	register("rw_read_heavy", rwReadHeavy)
	register("pool_getput", poolGetPut)
	register("once_fast", onceFast)
}

const workers = 8

// Two decimals: once_fast is a fraction of a nanosecond.
func syncReport(name string, start time.Time, ops int) {
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
	syncReport("rw_read_heavy", start, per*workers)
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
	syncReport("pool_getput", start, per*workers)
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
	syncReport("once_fast", start, per*workers)
	if runs.Load() != 1 {
		panic("f ran more than once")
	}
}
