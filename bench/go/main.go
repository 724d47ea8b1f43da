// SPDX-License-Identifier: MIT
//
// go_bench WORKLOAD [--name=value ...]: the Go twin of afe_bench for the
// workloads of bench/README.md that Go's runtime does natively, with
// "impl":"go", one JSON line each: spawn_join (goroutines joined by a
// WaitGroup), ping_pong (two goroutines, two channels of capacity 1),
// channel_mpmc (one buffered channel) and timers (goroutines asleep in
// time.Sleep). GOMAXPROCS is --threads, as a runtime's worker count.
// Standard library only: sh bench/go/build.sh builds it offline.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type args map[string]int64

// parse reads --name=value flags, each of names; exits 2 on anything else.
func parse(flags []string, defaults map[string]int64) args {
	a := args{}
	for k, v := range defaults {
		a[k] = v
	}
	for _, f := range flags {
		kv := strings.SplitN(strings.TrimPrefix(f, "--"), "=", 2)
		if _, known := defaults[kv[0]]; !strings.HasPrefix(f, "--") || len(kv) != 2 || !known {
			fmt.Fprintf(os.Stderr, "go_bench: unknown flag '%s'\n", f)
			os.Exit(2)
		}
		v, err := strconv.ParseInt(kv[1], 10, 64)
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "go_bench: --%s wants a non-negative number, not '%s'\n", kv[0], kv[1])
			os.Exit(2)
		}
		a[kv[0]] = v
	}
	runtime.GOMAXPROCS(int(a["threads"]))
	return a
}

func fail(workload, why string) {
	fmt.Fprintf(os.Stderr, "go_bench %s: %s\n", workload, why)
	os.Exit(1)
}

// peakRSSKB is VmHWM from /proc/self/status, in KiB.
func peakRSSKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb
		}
	}
	return 0
}

// report prints the workload's JSON line; extra is inserted before
// peak_rss_kb (",\"name\":value..." or "").
func report(workload string, threads, n int64, seconds float64, extra string) {
	fmt.Printf("{\"workload\":\"%s\",\"impl\":\"go\",\"threads\":%d,\"n\":%d,\"seconds\":%.6f,"+
		"\"ops_per_s\":%.0f%s,\"peak_rss_kb\":%d}\n",
		workload, threads, n, seconds, float64(n)/seconds, extra, peakRSSKB())
}

func spawnJoin(a args) {
	n := a["n"]
	start := time.Now()
	results := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			results[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum int64
	for _, r := range results {
		sum += r
	}
	seconds := time.Since(start).Seconds()
	if sum != n*(n-1)/2 {
		fail("spawn_join", fmt.Sprintf("sum %d, want %d", sum, n*(n-1)/2))
	}
	report("spawn_join", a["threads"], n, seconds, "")
}

func pingPong(a args) {
	n := a["n"]
	toPong, toPing := make(chan int64, 1), make(chan int64, 1)
	samples := make([]int64, n)
	start := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			toPing <- (<-toPong) + 1
		}
	}()
	var token int64
	for i := range samples {
		t0 := time.Now()
		toPong <- token
		token = <-toPing + 1
		samples[i] = time.Since(t0).Nanoseconds()
	}
	seconds := time.Since(start).Seconds()
	if token != 2*n {
		fail("ping_pong", fmt.Sprintf("token %d, want %d", token, 2*n))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(q float64) float64 { return float64(samples[int(q*float64(n-1))]) / 1000 }
	report("ping_pong", a["threads"], n, seconds,
		fmt.Sprintf(",\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f", at(0.5), at(0.99), at(1)))
}

func channelMPMC(a args) {
	n, producers, consumers, capacity := a["n"], a["producers"], a["consumers"], a["cap"]
	if producers < 1 || consumers < 1 {
		fail("channel_mpmc", "want producers >= 1 and consumers >= 1")
	}
	ch := make(chan int64, capacity)
	sums := make([]int64, consumers)
	start := time.Now()
	var senders, receivers sync.WaitGroup
	senders.Add(int(producers))
	receivers.Add(int(consumers))
	for p := int64(0); p < producers; p++ {
		go func(p int64) {
			for i := p; i < n; i += producers {
				ch <- i
			}
			senders.Done()
		}(p)
	}
	for c := range sums {
		go func(c int) {
			for v := range ch {
				sums[c] += v
			}
			receivers.Done()
		}(c)
	}
	senders.Wait()
	close(ch)
	receivers.Wait()
	seconds := time.Since(start).Seconds()
	var sum int64
	for _, s := range sums {
		sum += s
	}
	if sum != n*(n-1)/2 {
		fail("channel_mpmc", fmt.Sprintf("sum %d, want %d: an item lost or doubled", sum, n*(n-1)/2))
	}
	report("channel_mpmc", a["threads"], n, seconds,
		fmt.Sprintf(",\"producers\":%d,\"consumers\":%d,\"cap\":%d", producers, consumers, capacity))
}

func timers(a args) {
	n, ms := a["n"], a["ms"]
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	report("timers", a["threads"], n, time.Since(start).Seconds(), fmt.Sprintf(",\"ms\":%d", ms))
}

func main() {
	workloads := map[string]struct {
		run      func(args)
		defaults map[string]int64
	}{
		"spawn_join":   {spawnJoin, map[string]int64{"n": 1000000, "threads": 2}},
		"ping_pong":    {pingPong, map[string]int64{"n": 1000000, "threads": 2}},
		"channel_mpmc": {channelMPMC, map[string]int64{"n": 10000000, "producers": 4, "consumers": 4, "cap": 1024, "threads": 2}},
		"timers":       {timers, map[string]int64{"n": 100000, "ms": 10, "threads": 2}},
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go_bench WORKLOAD [--name=value ...]\nworkloads: all spawn_join ping_pong channel_mpmc timers")
		os.Exit(2)
	}
	if os.Args[1] == "all" {
		for _, name := range []string{"spawn_join", "ping_pong", "channel_mpmc", "timers"} {
			w := workloads[name]
			w.run(parse(nil, w.defaults))
		}
		return
	}
	w, ok := workloads[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "go_bench: no workload '%s'\n", os.Args[1])
		os.Exit(2)
	}
	w.run(parse(os.Args[2:], w.defaults))
}
