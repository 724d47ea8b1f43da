// SPDX-License-Identifier: MIT
//! tokio_bench WORKLOAD [--name=value ...]: the Tokio twin of afe_bench, the
//! workloads of shared/BENCH.md with "impl":"tokio", one JSON line each.
//! `tokio_bench all` runs every workload at its defaults, except the servers
//! (echo, udp_echo), which serve a separate load client and print nothing on
//! stdout.
//!
//! Like afe_block_on, which spawns the root future onto a worker and parks
//! the calling thread, every root here runs as a task spawned onto the
//! multi-threaded runtime (worker_threads = --threads); the runtime is built
//! before the clock starts and dropped after it stops.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::process::exit;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

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

    /// The text of --name=..., or fallback.
    fn get_str<'a>(&'a self, name: &str, fallback: &'a str) -> &'a str {
        let prefix = format!("--{}=", name);
        self.flags
            .iter()
            .find_map(|arg| arg.strip_prefix(&prefix))
            .unwrap_or(fallback)
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
    report_with(workload, threads, n, seconds, lat, None);
}

/// Prints the workload's JSON line with an extra field (`"name":value`)
/// before peak_rss_kb, as afe_bench's bench_report_with does.
fn report_with(
    workload: &str,
    threads: i64,
    n: i64,
    seconds: f64,
    lat: Option<(f64, f64, f64)>,
    extra: Option<&str>,
) {
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
    if let Some(extra) = extra {
        line += ",";
        line += extra;
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

/// One udp_echo receive loop: a datagram in, the same bytes back to its
/// sender, until an error.
async fn udp_echo_loop(socket: Arc<UdpSocket>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536]; // any datagram
    loop {
        let (len, from) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..len], from).await?;
    }
}

/// udp_echo: a UDP echo server on 127.0.0.1:port for the load client
/// (bench/udp_client.c), which measures and prints the JSON line. `tasks`
/// receive loops (default: one per worker) share one socket through an Arc,
/// as Tokio's UdpSocket documentation shows. Serves for --seconds=N, or
/// until SIGINT/SIGTERM when N is 0; a loop's error stops the run.
fn udp_echo(a: &Args) {
    a.check(&["port", "threads", "seconds", "tasks"]);
    let port = a.get("port", 7000);
    let threads = a.get("threads", 2);
    let seconds = a.get("seconds", 0);
    let tasks = a.get("tasks", threads);
    if port > 65535 || tasks < 1 {
        fail("udp_echo", "bad port or tasks".into());
    }
    let rt = runtime("udp_echo", threads);
    rt.block_on(async move {
        let socket = UdpSocket::bind(("127.0.0.1", port as u16))
            .await
            .unwrap_or_else(|e| fail("udp_echo", format!("cannot bind port {}: {}", port, e)));
        let local = socket
            .local_addr()
            .unwrap_or_else(|e| fail("udp_echo", format!("local_addr: {}", e)));
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .unwrap_or_else(|e| fail("udp_echo", format!("SIGINT: {}", e)));
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| fail("udp_echo", format!("SIGTERM: {}", e)));
        eprintln!(
            "tokio_bench udp_echo: serving on {} with {} workers, {} receive tasks",
            local, threads, tasks
        );
        let socket = Arc::new(socket);
        let mut loops = JoinSet::new();
        for _ in 0..tasks {
            loops.spawn(udp_echo_loop(socket.clone()));
        }
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
            Some(ended) = loops.join_next() => match ended {
                Ok(Err(e)) => fail("udp_echo", format!("server stopped: {}", e)),
                Ok(Ok(())) => unreachable!("a receive loop ends only on an error"),
                Err(e) => fail("udp_echo", format!("receive loop: {}", e)),
            },
        }
        // Dropping the JoinSet aborts the loops.
    });
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

/// Every 4 KiB block of the file_read file begins with its own offset.
const STAMP_BLOCK: u64 = 4096;

/// True when the file has the size and the stamps (sampled) file_read writes.
fn file_is_ready(file: &File, size: u64) -> bool {
    if file.metadata().map_or(true, |m| m.len() != size) {
        return false;
    }
    (0..64u64).all(|i| {
        let off = (size / STAMP_BLOCK * i / 64) * STAMP_BLOCK;
        let mut stamp = [0u8; 8];
        file.read_exact_at(&mut stamp, off).is_ok() && u64::from_ne_bytes(stamp) == off
    })
}

/// Writes the file as afe_bench does: each 4 KiB block filled with the low
/// byte of its block number, its first 8 bytes its own offset (native u64).
fn make_file(file: &File, size: u64) {
    const CHUNK: u64 = 1 << 20;
    let mut chunk = vec![0u8; CHUNK as usize];
    if file.set_len(0).is_err() {
        fail("file_read", "cannot make the file".into());
    }
    for base in (0..size).step_by(CHUNK as usize) {
        for off in (0..CHUNK).step_by(STAMP_BLOCK as usize) {
            let stamp = base + off;
            let block = &mut chunk[off as usize..(off + STAMP_BLOCK) as usize];
            block.fill((stamp / STAMP_BLOCK) as u8);
            block[..8].copy_from_slice(&stamp.to_ne_bytes());
        }
        if file.write_all_at(&chunk, base).is_err() {
            fail("file_read", "cannot write the file".into());
        }
    }
}

/// Fraction of the file's pages resident in the page cache (mincore).
fn resident_fraction(file: &File, size: u64) -> f64 {
    // SAFETY: the mapping is only handed to mincore and unmapped here; its
    // pages are never touched.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if map == libc::MAP_FAILED {
            return 1.0;
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE) as u64;
        let pages = ((size + page - 1) / page) as usize;
        let mut vec = vec![0u8; pages];
        let resident = if libc::mincore(map, size as usize, vec.as_mut_ptr()) == 0 {
            vec.iter().filter(|&&v| v & 1 != 0).count()
        } else {
            pages
        };
        libc::munmap(map, size as usize);
        resident as f64 / pages as f64
    }
}

/// True when every 4 KiB block of buf carries its offset in the file.
fn stamps_match(buf: &[u8], offset: u64) -> bool {
    buf.chunks(STAMP_BLOCK as usize).enumerate().all(|(i, block)| {
        let stamp = u64::from_ne_bytes(block[..8].try_into().unwrap());
        stamp == offset + i as u64 * STAMP_BLOCK
    })
}

/// What the file_read readers share.
struct FileShared {
    file: File,
    bs: usize,
    blocks: u64,
    /// Reads not yet claimed. Relaxed: a bare counter, nothing is published
    /// through it.
    left: AtomicI64,
    /// Reads short or with a wrong stamp. Relaxed: read after every reader
    /// is joined, and the join orders it.
    bad: AtomicI64,
}

/// One file_read reader: claims reads until n are claimed, each of bs bytes
/// at a random 4 KiB-aligned offset, and checks what it got.
///
/// tokio::fs has no positional read (its File would take a seek and a read,
/// two trips to the blocking pool, and a File per task, as the offset is
/// the descriptor's), and underneath it runs each std::fs call on the
/// blocking pool with spawn_blocking; so a reader does what a Tokio user
/// writes for random reads: FileExt::read_at (pread) in spawn_blocking.
async fn file_reader(s: Arc<FileShared>, mut rng: u64) {
    let mut buf = vec![0u8; s.bs];
    while s.left.fetch_sub(1, Ordering::Relaxed) > 0 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let offset = (rng % s.blocks) * STAMP_BLOCK;
        let shared = s.clone();
        let (back, got) = tokio::task::spawn_blocking(move || {
            let got = shared.file.read_at(&mut buf, offset);
            (buf, got)
        })
        .await
        .unwrap_or_else(|e| fail("file_read", format!("read task: {}", e)));
        buf = back;
        if got.ok() != Some(s.bs) || !stamps_match(&buf, offset) {
            s.bad.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// file_read: `depth` tasks read random 4 KiB-aligned blocks of `bs` bytes
/// from a `size_mb` MiB file, n reads in all. The file (afe_bench's, at the
/// same path unless --path says otherwise) is made before timing, fsync'd,
/// its pages dropped (or, with --warm=1, the whole file read once instead)
/// and readahead turned off; every read checks the stamps it covers.
/// "cache":"cold" when under 1% of the file was resident at the start,
/// "warm" when over 99%.
fn file_read(a: &Args) {
    a.check(&["bs", "depth", "n", "size_mb", "threads", "warm", "path"]);
    let bs = a.get("bs", 4096);
    let depth = a.get("depth", 64);
    let n = a.get("n", 262144);
    let size_mb = a.get("size_mb", 1024);
    let threads = a.get("threads", 2);
    let warm = a.get("warm", 0) != 0;
    let path = a.get_str("path", "/tmp/afe_file_read.dat");
    if bs < STAMP_BLOCK as i64
        || bs % STAMP_BLOCK as i64 != 0
        || depth < 1
        || n < 1
        || size_mb < 1
        || (size_mb as u64) << 20 < bs as u64
    {
        fail(
            "file_read",
            "bs must be a multiple of 4096 within the file; depth, n, size_mb positive".into(),
        );
    }
    let size = (size_mb as u64) << 20;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .unwrap_or_else(|e| fail("file_read", format!("cannot open {}: {}", path, e)));
    if !file_is_ready(&file, size) {
        make_file(&file, size);
    }
    let fd = file.as_raw_fd();
    // Synced first: dirty pages would not be dropped.
    // SAFETY: posix_fadvise only advises the kernel about fd's pages.
    let dropped = file.sync_all().is_ok()
        && unsafe {
            (warm || libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) == 0)
                && libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_RANDOM) == 0
        };
    if !dropped {
        fail("file_read", "cannot drop the file's pages".into());
    }
    if warm {
        let mut chunk = vec![0u8; 1 << 20];
        for off in (0..size).step_by(chunk.len()) {
            if file.read_exact_at(&mut chunk, off).is_err() {
                fail("file_read", "cannot read the file".into());
            }
        }
    }
    let resident = resident_fraction(&file, size);
    let cache = if resident < 0.01 {
        Some("\"cache\":\"cold\"")
    } else if resident > 0.99 {
        Some("\"cache\":\"warm\"")
    } else {
        None
    };

    let shared = Arc::new(FileShared {
        file,
        bs: bs as usize,
        blocks: (size - bs as u64) / STAMP_BLOCK + 1,
        left: AtomicI64::new(n),
        bad: AtomicI64::new(0),
    });
    let rt = runtime("file_read", threads);
    let start = Instant::now();
    let s = shared.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let readers: Vec<_> = (0..depth as u64)
                .map(|i| {
                    let seed = 0x9e3779b97f4a7c15u64.wrapping_mul(i + 1);
                    tokio::spawn(file_reader(s.clone(), seed))
                })
                .collect();
            for r in readers {
                r.await.unwrap_or_else(|e| fail("file_read", format!("reader: {}", e)));
            }
        })
        .await
        .unwrap_or_else(|e| fail("file_read", format!("root: {}", e)))
    });
    let seconds = start.elapsed().as_secs_f64();

    let bad = shared.bad.load(Ordering::Relaxed);
    if bad != 0 {
        fail("file_read", format!("{} reads were short or had wrong stamps", bad));
    }
    drop(rt);
    report_with("file_read", threads, n, seconds, None, cache);
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: tokio_bench WORKLOAD [--name=value ...]\nworkloads: all spawn_join yield ping_pong channel_mpmc timers echo udp_echo file_read"
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
            file_read(&none);
        }
        "spawn_join" => spawn_join(&args),
        "yield" => yield_workload(&args),
        "ping_pong" => ping_pong(&args),
        "timers" => timers(&args),
        "channel_mpmc" => channel_mpmc(&args),
        "file_read" => file_read(&args),
        "echo" => echo(&args),
        "udp_echo" => udp_echo(&args),
        _ => usage(),
    }
}
