package main

import (
	"context"
	"time"
)

// ctx_tree: build a tree of n cancellable contexts (fan-out 10 under the
// root, breadth first), cancel the root, and check that every node is done.
func ctxTree(n int) {
	start := time.Now()
	root, cancel := context.WithCancel(context.Background())
	nodes := make([]context.Context, 0, n)
	cancels := make([]context.CancelFunc, 0, n)
	nodes = append(nodes, root)
	for i := 1; i < n; i++ {
		c, cf := context.WithCancel(nodes[(i-1)/10])
		nodes = append(nodes, c)
		cancels = append(cancels, cf)
	}
	cancel()
	for _, c := range nodes {
		<-c.Done()
		if c.Err() != context.Canceled {
			panic("ctx_tree: a node was not cancelled")
		}
	}
	reportMs("ctx_tree", start)
	_ = cancels
}

// fresh_timeout: n iterations of a select between a ready channel and a
// fresh time.After(1h), the loop Go programs write for per-iteration
// timeouts.
func freshTimeout(n int) {
	ready := make(chan int, 1)
	got := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		ready <- i
		select {
		case <-ready:
			got++
		case <-time.After(time.Hour):
			panic("fresh_timeout: the timeout fired")
		}
	}
	reportNs("fresh_timeout", start, n)
	if got != n {
		panic("fresh_timeout: lost a value")
	}
}

func init() {
	register("ctx_tree", ctxTree)
	register("fresh_timeout", freshTimeout)
}
