// Hand-written equivalents of golang.org/x/sync's semaphore.Weighted and
// errgroup.Group (x/sync is not reachable from the build machines), and the
// workloads that measure them (goro side: bench/syncbench.cpp).
//
//	sem_acqrel      n Acquire(1)/Release(1) pairs on a Weighted of size 4, 8 goroutines; ns/op
//	errgroup_spawn  n tasks started with Group.Go, then Wait; ns/op
package main

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	register("sem_acqrel", semAcqRel)
	register("errgroup_spawn", errgroupSpawn)
}

// weighted is x/sync/semaphore.Weighted's algorithm.
type weighted struct {
	size    int64
	cur     int64
	mu      sync.Mutex
	waiters list.List
}

type semWaiter struct {
	n     int64
	ready chan<- struct{}
}

func (s *weighted) Acquire(ctx context.Context, n int64) error {
	done := ctx.Done()
	s.mu.Lock()
	select {
	case <-done:
		s.mu.Unlock()
		return ctx.Err()
	default:
	}
	if s.size-s.cur >= n && s.waiters.Len() == 0 {
		s.cur += n
		s.mu.Unlock()
		return nil
	}
	if n > s.size {
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
	ready := make(chan struct{})
	elem := s.waiters.PushBack(semWaiter{n: n, ready: ready})
	s.mu.Unlock()
	select {
	case <-done:
		s.mu.Lock()
		select {
		case <-ready:
			s.cur -= n
			s.notifyWaiters()
		default:
			isFront := s.waiters.Front() == elem
			s.waiters.Remove(elem)
			if isFront && s.size > s.cur {
				s.notifyWaiters()
			}
		}
		s.mu.Unlock()
		return ctx.Err()
	case <-ready:
		select {
		case <-done:
			s.Release(n)
			return ctx.Err()
		default:
		}
		return nil
	}
}

func (s *weighted) Release(n int64) {
	s.mu.Lock()
	s.cur -= n
	if s.cur < 0 {
		s.mu.Unlock()
		panic("semaphore: released more than held")
	}
	s.notifyWaiters()
	s.mu.Unlock()
}

func (s *weighted) notifyWaiters() {
	for {
		next := s.waiters.Front()
		if next == nil {
			break
		}
		w := next.Value.(semWaiter)
		if s.size-s.cur < w.n {
			break
		}
		s.cur += w.n
		s.waiters.Remove(next)
		close(w.ready)
	}
}

// group is x/sync/errgroup.Group without a limit or context.
type group struct {
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.errOnce.Do(func() { g.err = err })
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	return g.err
}

func semAcqRel(n int) {
	s := &weighted{size: 4}
	ctx := context.Background()
	var inside atomic.Int64
	var wg sync.WaitGroup
	per := n / workers
	start := time.Now()
	wg.Add(workers)
	for g := 0; g < workers; g++ {
		go func() {
			for i := 0; i < per; i++ {
				if err := s.Acquire(ctx, 1); err != nil {
					panic(err)
				}
				if inside.Add(1) > 4 {
					panic("more than 4 inside")
				}
				inside.Add(-1)
				s.Release(1)
			}
			wg.Done()
		}()
	}
	wg.Wait()
	syncReport("sem_acqrel", start, per*workers)
}

func errgroupSpawn(n int) {
	var ran atomic.Int64
	start := time.Now()
	var g group
	for i := 0; i < n; i++ {
		g.Go(func() error { ran.Add(1); return nil })
	}
	if err := g.Wait(); err != nil || ran.Load() != int64(n) {
		panic("a task did not run")
	}
	syncReport("errgroup_spawn", start, n)
}
