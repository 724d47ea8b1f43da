// SPDX-License-Identifier: MIT
//! tokio_bench WORKLOAD [--name=value ...]: the Tokio twin of afe_bench, the
//! workloads of shared/BENCH.md with "impl":"tokio", one JSON line each.
//! `tokio_bench all` runs every workload at its defaults, except echo, which
//! serves a separate load client and prints nothing on stdout.
//!
//! Like afe_block_on, which spawns the root future onto a worker and parks
//! the calling thread, every root here runs as a task spawned onto the
//! multi-threaded runtime (worker_threads = --threads); the runtime is built
//! before the clock starts and dropped after it stops.

use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

/// The --name=value flags of one run.
struct Args {
    flags: Vec<String>,
}

impl Args {
    /// Exits with status 2 if a flag is not --name=... for one of names.
    fn check(&self, names: &[&str]) {
        for arg in &self.flags {
            let known = names.iter().any(|n| {
                arg.strip_prefix("--")
                    .and_then(|rest| rest.strip_prefix(n))
                    .map_or(false, |rest| rest.starts_with('='))
            });
            if !known {
                eprintln!("tokio_bench: unknown flag '{}'", arg);
                exit(2);
            }
        }
    }

    /// The value of --name=..., or fallback; exits with status 2 on a value
    /// that is not a non-negative number.
    fn get(&self, name: &str, fallback: i64) -> i64 {
        let prefix = format!("--{}=", name);
        for arg in &self.flags {
            if let Some(value) = arg.strip_prefix(&prefix) {
                return match value.parse::<i64>() {
                    Ok(v) if v >= 0 => v,
                    _ => {
                        eprintln!(
                            "tokio_bench: --{} wants a non-negative number, not '{}'",
                            name, value
                        );
                        exit(2);
                    }
                };
            }
        }
        fallback
    }
}

/// Exits with status 1 after printing why the run's work was wrong.
fn fail(workload: &str, why: String) -> ! {
    eprintln!("tokio_bench {}: check failed: {}", workload, why);
    exit(1);
}

/// A multi-threaded runtime with `threads` workers, or exit.
fn runtime(workload: &str, threads: i64) -> tokio::runtime::Runtime {
    if threads < 1 {
        fail(workload, "--threads must be at least 1".into());
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads as usize)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(workload, format!("cannot start the runtime: {}", e)))
}

fn peak_rss_kb() -> i64 {
    // SAFETY: getrusage only writes the struct it is handed.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 {
            ru.ru_maxrss as i64
        } else {
            0
        }
    }
}

/// p50, p99 and max in microseconds of latency samples in nanoseconds
/// (sorts them), picked as afe_bench picks them.
fn latency_of(samples_ns: &mut [u64]) -> (f64, f64, f64) {
    let n = samples_ns.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    samples_ns.sort_unstable();
    let us = |v: u64| v as f64 / 1000.0;
    (
        us(samples_ns[n / 2]),
        us(samples_ns[((n as f64) * 0.99) as usize]),
        us(samples_ns[n - 1]),
    )
}

/// Prints the workload's JSON line.
fn report(workload: &str, threads: i64, n: i64, seconds: f64, lat: Option<(f64, f64, f64)>) {
    let ops = if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
    let mut line = format!(
        "{{\"workload\":\"{}\",\"impl\":\"tokio\",\"threads\":{},\"n\":{},\"seconds\":{:.6},\"ops_per_s\":{:.0}",
        workload, threads, n, seconds, ops
    );
    if let Some((p50, p99, max)) = lat {
        line += &format!(
            ",\"p50_us\":{:.3},\"p99_us\":{:.3},\"max_us\":{:.3}",
            p50, p99, max
        );
    }
    line += &format!(",\"peak_rss_kb\":{}}}", peak_rss_kb());
    println!("{}", line);
}

/// spawn_join: a root task spawns n tasks, each returns its index; the root
/// joins them in order and checks the sum.
fn spawn_join(a: &Args) {
    a.check(&["n", "threads"]);
    let n = a.get("n", 1_000_000);
    let threads = a.get("threads", 2);
    let rt = runtime("spawn_join", threads);

    let start = Instant::now();
    let sum = rt.block_on(async move {
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(n as usize);
            for i in 0..n {
                handles.push(tokio::spawn(async move { i }));
            }
            let mut sum: i64 = 0;
            for h in handles {
                sum += h.await.unwrap_or_else(|e| fail("spawn_join", format!("join: {}", e)));
            }
            sum
        })
        .await
        .unwrap_or_else(|e| fail("spawn_join", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();

    let want = n * (n - 1) / 2;
    if sum != want {
        fail("spawn_join", format!("sum {}, want {}", sum, want));
    }
    drop(rt);
    report("spawn_join", threads, n, seconds, None);
}

/// yield: `tasks` tasks each yield back to the scheduler n/tasks times.
fn yield_workload(a: &Args) {
    a.check(&["n", "tasks", "threads"]);
    let n = a.get("n", 10_000_000);
    let tasks = a.get("tasks", 100);
    let threads = a.get("threads", 2);
    if tasks < 1 {
        fail("yield", "--tasks must be at least 1".into());
    }
    let rounds = n / tasks;
    let rt = runtime("yield", threads);

    let start = Instant::now();
    let total = rt.block_on(async move {
        tokio::spawn(async move {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        let mut done: i64 = 0;
                        while done < rounds {
                            tokio::task::yield_now().await;
                            done += 1;
                        }
                        done
                    })
                })
                .collect();
            let mut total: i64 = 0;
            for h in handles {
                total += h.await.unwrap_or_else(|e| fail("yield", format!("join: {}", e)));
            }
            total
        })
        .await
        .unwrap_or_else(|e| fail("yield", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();

    if total != tasks * rounds {
        fail("yield", format!("{} yields, want {}", total, tasks * rounds));
    }
    drop(rt);
    report("yield", threads, total, seconds, None);
}

/// What ping sends pong: the token and the oneshot for the answer.
struct ToPong(i64, oneshot::Sender<ToPing>);
/// What pong answers: the token and the oneshot for ping's next hop.
struct ToPing(i64, oneshot::Sender<ToPong>);

/// ping_pong: two tasks hand a token back and forth, a oneshot per hop, n
/// round trips; latency per round trip, timed by ping.
fn ping_pong(a: &Args) {
    a.check(&["n", "threads"]);
    let n = a.get("n", 1_000_000);
    let threads = a.get("threads", 2);
    let rt = runtime("ping_pong", threads);
    let mut samples: Vec<u64> = vec![0; n as usize];
    let (first_tx, first_rx) = oneshot::channel::<ToPong>();

    let start = Instant::now();
    let pong = rt.spawn(async move {
        let mut inbox = first_rx;
        for _ in 0..n {
            let ToPong(token, reply) = inbox
                .await
                .unwrap_or_else(|_| fail("ping_pong", "ping went away".into()));
            let (next_tx, next_rx) = oneshot::channel::<ToPong>();
            inbox = next_rx;
            if reply.send(ToPing(token + 1, next_tx)).is_err() {
                fail("ping_pong", "ping went away".into());
            }
        }
    });
    let ping = rt.spawn(async move {
        let mut to_pong = first_tx;
        let mut token: i64 = 0;
        for slot in samples.iter_mut() {
            let t0 = Instant::now();
            let (reply_tx, reply_rx) = oneshot::channel::<ToPing>();
            if to_pong.send(ToPong(token, reply_tx)).is_err() {
                fail("ping_pong", "pong went away".into());
            }
            let ToPing(answer, next) = reply_rx
                .await
                .unwrap_or_else(|_| fail("ping_pong", "pong went away".into()));
            *slot = t0.elapsed().as_nanos() as u64;
            to_pong = next;
            token = answer + 1;
        }
        (token, samples)
    });
    let (token, mut samples) = rt.block_on(async move {
        tokio::spawn(async move {
            pong.await.unwrap_or_else(|e| fail("ping_pong", format!("pong: {}", e)));
            ping.await.unwrap_or_else(|e| fail("ping_pong", format!("ping: {}", e)))
        })
        .await
        .unwrap_or_else(|e| fail("ping_pong", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();

    if token != 2 * n {
        fail("ping_pong", format!("token {}, want {}", token, 2 * n));
    }
    drop(rt);
    let lat = latency_of(&mut samples);
    report("ping_pong", threads, n, seconds, Some(lat));
}

/// timers: n tasks each sleep ms milliseconds, then finish; the root joins
/// all. seconds is the whole run; the ideal is ms.
fn timers(a: &Args) {
    a.check(&["n", "ms", "threads"]);
    let n = a.get("n", 100_000);
    let ms = a.get("ms", 10);
    let threads = a.get("threads", 2);
    let rt = runtime("timers", threads);
    let pause = Duration::from_millis(ms as u64);

    let start = Instant::now();
    let finished = rt.block_on(async move {
        tokio::spawn(async move {
            let handles: Vec<_> = (0..n)
                .map(|_| tokio::spawn(async move { tokio::time::sleep(pause).await }))
                .collect();
            let mut finished: i64 = 0;
            for h in handles {
                h.await.unwrap_or_else(|e| fail("timers", format!("join: {}", e)));
                finished += 1;
            }
            finished
        })
        .await
        .unwrap_or_else(|e| fail("timers", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();

    if finished != n {
        fail("timers", format!("{} sleeps finished, want {}", finished, n));
    }
    if seconds * 1000.0 < ms as f64 {
        fail("timers", format!("finished in {:.3} s, before the {} ms sleep", seconds, ms));
    }
    drop(rt);
    report("timers", threads, n, seconds, None);
}

/// One echo connection: what it receives, it sends back, until the peer
/// closes (or errs).
async fn echo_conn(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        let got = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(got) => got,
        };
        if stream.write_all(&buf[..got]).await.is_err() {
            return;
        }
    }
}

/// echo: a TCP echo server on 127.0.0.1:port for the common load client,
/// which measures and prints the JSON line. Serves for --seconds=N, or until
/// SIGINT/SIGTERM when N is 0; at most --conns connections at once.
fn echo(a: &Args) {
    a.check(&["port", "threads", "seconds", "conns"]);
    let port = a.get("port", 7000);
    let threads = a.get("threads", 2);
    let seconds = a.get("seconds", 0);
    let conns = a.get("conns", 1024);
    if port > 65535 || conns < 1 {
        fail("echo", "bad port or conns".into());
    }
    let rt = runtime("echo", threads);
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port as u16))
            .await
            .unwrap_or_else(|e| fail("echo", format!("cannot listen on port {}: {}", port, e)));
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .unwrap_or_else(|e| fail("echo", format!("SIGINT: {}", e)));
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| fail("echo", format!("SIGTERM: {}", e)));
        eprintln!(
            "tokio_bench echo: serving on 127.0.0.1:{} with {} workers",
            port, threads
        );
        let slots = Arc::new(Semaphore::new(conns as usize));
        let server = tokio::spawn(async move {
            loop {
                let slot = slots.clone().acquire_owned().await.expect("semaphore closed");
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(async move {
                            echo_conn(stream).await;
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        // Out of descriptors and the like: wait, then go on.
                        eprintln!("tokio_bench echo: accept: {}", e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        let timeout = async {
            if seconds > 0 {
                tokio::time::sleep(Duration::from_secs(seconds as u64)).await
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            _ = timeout => {}
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        server.abort();
    });
    // Open connections are not waited for.
    rt.shutdown_background();
}

/// channel_mpmc: `producers` tasks send the numbers 1..n (each its own
/// share) through one async-channel of capacity `cap` to `consumers` tasks,
/// which receive until the channel closes (the last sender dropped). Every
/// item received exactly once: checked by count and sum.
fn channel_mpmc(a: &Args) {
    a.check(&["n", "threads", "producers", "consumers", "cap"]);
    let n = a.get("n", 10_000_000);
    let threads = a.get("threads", 2);
    let producers = a.get("producers", 4);
    let consumers = a.get("consumers", 4);
    let cap = a.get("cap", 1024);
    if producers < 1 || consumers < 1 || cap < 1 {
        fail("channel_mpmc", "needs a producer, a consumer and a capacity".into());
    }
    let rt = runtime("channel_mpmc", threads);
    let start = Instant::now();
    let (count, sum) = rt.block_on(async move {
        tokio::spawn(async move {
            let (tx, rx) = async_channel::bounded::<u64>(cap as usize);
            let mut receivers = Vec::new();
            for _ in 0..consumers {
                let rx = rx.clone();
                receivers.push(tokio::spawn(async move {
                    let (mut count, mut sum) = (0u64, 0u64);
                    while let Ok(v) = rx.recv().await {
                        count += 1;
                        sum += v;
                    }
                    (count, sum)
                }));
            }
            drop(rx);
            let share = n as u64 / producers as u64;
            let mut first = 1u64;
            let mut senders = Vec::new();
            for p in 0..producers {
                let last = if p == producers - 1 { n as u64 } else { first + share - 1 };
                let tx = tx.clone();
                senders.push(tokio::spawn(async move {
                    for v in first..=last {
                        if tx.send(v).await.is_err() {
                            break;
                        }
                    }
                }));
                first = last + 1;
            }
            drop(tx);
            for s in senders {
                s.await.unwrap();
            }
            let (mut count, mut sum) = (0u64, 0u64);
            for r in receivers {
                let (c, s) = r.await.unwrap();
                count += c;
                sum += s;
            }
            (count, sum)
        })
        .await
        .unwrap_or_else(|e| fail("channel_mpmc", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();
    drop(rt);
    let want = n as u64 * (n as u64 + 1) / 2;
    if count != n as u64 || sum != want {
        fail(
            "channel_mpmc",
            format!("{} items with sum {}, want {} with sum {}", count, sum, n, want),
        );
    }
    println!(
        "{{\"workload\":\"channel_mpmc\",\"impl\":\"tokio\",\"threads\":{},\"n\":{},\"seconds\":{:.6},\"ops_per_s\":{:.0},\"producers\":{},\"consumers\":{},\"cap\":{},\"peak_rss_kb\":{}}}",
        threads, n, seconds, n as f64 / seconds, producers, consumers, cap, peak_rss_kb()
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: tokio_bench WORKLOAD [--name=value ...]\nworkloads: all spawn_join yield ping_pong channel_mpmc timers echo"
        );
        exit(2);
    };
    if argv.len() < 2 {
        usage();
    }
    let args = Args { flags: argv[2..].to_vec() };
    match argv[1].as_str() {
        "all" => {
            let none = Args { flags: Vec::new() };
            spawn_join(&none);
            yield_workload(&none);
            ping_pong(&none);
            channel_mpmc(&none);
            timers(&none);
        }
        "spawn_join" => spawn_join(&args),
        "yield" => yield_workload(&args),
        "ping_pong" => ping_pong(&args),
        "timers" => timers(&args),
        "channel_mpmc" => channel_mpmc(&args),
        "echo" => echo(&args),
        _ => usage(),
    }
}
