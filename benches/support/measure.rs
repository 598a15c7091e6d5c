//! Measurement shared by the benches of sqlaio and of its peers: contenders,
//! the executors that await them, criterion groups, the interleaved mode,
//! peak heap memory and the JSON lines that `scripts/bench_report.py` reads.
//!
//! Included with `#[path]` by every bench file (of this crate and of
//! `benches/peers`), so it depends on no database crate.
//!
//! **Two modes.** Without arguments (or with criterion's own), every group is
//! measured by criterion, each contender for a few seconds before the next.
//! With `--interleaved`, every round gives each contender one short run in a
//! rotating order and divides it by the floor's run of the same round; the
//! median of those ratios, with its quartiles, is printed as a Markdown table
//! and, when `SQLAIO_BENCH_JSON` names a file, appended to it as one JSON line
//! per contender. On a shared machine the interleaved ratios are the stable
//! ones: every contender meets the same load.
//!
//! **CPU time.** The interleaved mode also reads the process's CPU time
//! (user plus system, every thread: the bench thread, the workers, the
//! runtimes' threads) before and after each run, and reports it per
//! operation beside the wall time. The shared timing helpers ([`sync_ops`],
//! [`async_ops`], [`time_loop!`]) read it around their timed loop; a run
//! timed otherwise is read around the whole run, minus the untimed setup of
//! [`with_setup`].

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::async_executor::AsyncExecutor;
use criterion::{Criterion, SamplingMode, Throughput};

/// The 30-character name every row carries (`customer-` and 21 digits).
pub fn name_for(id: u64) -> String {
    format!("customer-{id:021}")
}

/// Ids visiting every one of `rows` rows once per `rows` calls, in a scattered order.
#[derive(Debug)]
pub struct Ids {
    next: u64,
    rows: u64,
}

impl Ids {
    pub fn new(start: u64, rows: u64) -> Ids {
        Ids { next: start, rows }
    }

    pub fn next_id(&mut self) -> i64 {
        self.next += 1;
        // 7919 is prime, so this visits every id once per `rows` calls.
        ((self.next * 7919) % self.rows + 1) as i64
    }
}

// ---------------------------------------------------------------------------
// Peak heap memory
// ---------------------------------------------------------------------------

/// A global allocator that counts the bytes allocated through it and the
/// peak, while [`Counting::enable`] is on. Bench binaries that measure memory
/// install it with `#[global_allocator]`; memory the SQLite C library takes
/// with its own `malloc` (its page cache) is not counted, for any contender.
#[derive(Debug)]
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    /// Starts counting from zero.
    pub fn enable() {
        CURRENT.store(0, Ordering::SeqCst);
        PEAK.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
    }

    pub fn disable() {
        COUNTING.store(false, Ordering::SeqCst);
    }

    /// Bytes allocated (and not freed) since `enable`, and the peak since
    /// the last `reset_peak`.
    pub fn now() -> (isize, isize) {
        (
            CURRENT.load(Ordering::SeqCst) as isize,
            PEAK.load(Ordering::SeqCst) as isize,
        )
    }

    pub fn reset_peak() {
        PEAK.store(CURRENT.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only atomics on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if COUNTING.load(Ordering::Relaxed) {
            shrink(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() && COUNTING.load(Ordering::Relaxed) {
            if new_size > layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        new
    }
}

fn grow(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrink(bytes: usize) {
    // Memory allocated before counting started may be freed while counting:
    // saturate at zero instead of wrapping.
    let _ = CURRENT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
        Some(c.saturating_sub(bytes))
    });
}

// ---------------------------------------------------------------------------
// CPU time
// ---------------------------------------------------------------------------

/// User plus system CPU time the whole process has used so far, every
/// thread included (`getrusage(RUSAGE_SELF)`, microsecond resolution).
pub fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid, and
    // `getrusage` only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// No CPU time noted.
const NO_CPU: u64 = u64::MAX;
/// CPU time of the last timed loop, in nanoseconds, noted by the timing helpers.
static LOOP_CPU: AtomicU64 = AtomicU64::new(NO_CPU);
/// CPU time of the last untimed setup ([`with_setup`]), in nanoseconds.
static SETUP_CPU: AtomicU64 = AtomicU64::new(0);

/// Notes the CPU time of a timed loop that started when the process had
/// used `start` (read with [`process_cpu`]).
pub fn note_loop_cpu(start: Duration) {
    let used = process_cpu().saturating_sub(start);
    LOOP_CPU.store(used.as_nanos() as u64, Ordering::SeqCst);
}

/// Runs one measured run and returns it with the CPU time it used: that of
/// its timed loop if a timing helper noted it, or of the whole run minus
/// its untimed setup.
fn cpu_of(run: impl FnOnce() -> Batch) -> (Batch, Duration) {
    LOOP_CPU.store(NO_CPU, Ordering::SeqCst);
    SETUP_CPU.store(0, Ordering::SeqCst);
    let start = process_cpu();
    let batch = run();
    let whole = process_cpu().saturating_sub(start);
    let cpu = match LOOP_CPU.swap(NO_CPU, Ordering::SeqCst) {
        NO_CPU => whole.saturating_sub(Duration::from_nanos(SETUP_CPU.load(Ordering::SeqCst))),
        ns => Duration::from_nanos(ns),
    };
    (batch, cpu)
}

// ---------------------------------------------------------------------------
// Executors
// ---------------------------------------------------------------------------

/// Where an async contender is awaited.
pub enum Exec {
    /// `futures::executor::block_on` on the bench thread.
    Futures,
    /// A tokio current-thread runtime, `block_on` on the bench thread.
    TokioCurrent(tokio::runtime::Runtime),
    /// A tokio multi-thread runtime (2 workers); each run is a task spawned
    /// on it, so the awaits happen on a runtime worker, as in an application.
    TokioMultiTask(tokio::runtime::Runtime),
    /// `async_std::task::block_on`.
    AsyncStd,
    /// `smol::block_on`.
    Smol,
}

impl Exec {
    pub fn tokio_current() -> Exec {
        Exec::TokioCurrent(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        )
    }

    pub fn tokio_multi_task() -> Exec {
        Exec::TokioMultiTask(multi_thread_runtime())
    }

    /// Awaits setup work (connecting, closing), not timed.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self {
            Exec::Futures => futures::executor::block_on(future),
            Exec::TokioCurrent(rt) | Exec::TokioMultiTask(rt) => rt.block_on(future),
            Exec::AsyncStd => async_std::task::block_on(future),
            Exec::Smol => smol::block_on(future),
        }
    }

    /// Runs one timed batch.
    pub fn run(&self, batch: BoxFuture) -> Batch {
        match self {
            Exec::TokioMultiTask(rt) => rt.block_on(rt.spawn(batch)).expect("task"),
            _ => self.block_on(batch),
        }
    }
}

impl AsyncExecutor for &Exec {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        Exec::block_on(self, future)
    }
}

pub fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------
// Contenders
// ---------------------------------------------------------------------------

/// What one run of a contender measured.
#[derive(Debug, Default)]
pub struct Batch {
    /// Wall time of the whole run.
    pub time: Duration,
    /// Nanoseconds of each operation, when the run was asked to time them.
    pub per_op: Vec<u64>,
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Batch> + Send>>;

/// One run of `n` units; `true` asks for per-operation times.
pub type Run<'a> = Box<dyn FnMut(u64, bool) -> Batch + 'a>;

/// Times `n` synchronous operations.
pub fn sync_ops(n: u64, per_op: bool, mut op: impl FnMut()) -> Batch {
    let mut times = Vec::with_capacity(if per_op { n as usize } else { 0 });
    let cpu = process_cpu();
    let start = Instant::now();
    for _ in 0..n {
        if per_op {
            let t = Instant::now();
            op();
            times.push(t.elapsed().as_nanos() as u64);
        } else {
            op();
        }
    }
    let time = start.elapsed();
    note_loop_cpu(cpu);
    Batch {
        time,
        per_op: times,
    }
}

/// Times `n` awaited operations; `op` makes each one's future.
pub async fn async_ops<F, Fut>(n: u64, per_op: bool, mut op: F) -> Batch
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut times = Vec::with_capacity(if per_op { n as usize } else { 0 });
    let cpu = process_cpu();
    let start = Instant::now();
    for _ in 0..n {
        if per_op {
            let t = Instant::now();
            op().await;
            times.push(t.elapsed().as_nanos() as u64);
        } else {
            op().await;
        }
    }
    let time = start.elapsed();
    note_loop_cpu(cpu);
    Batch {
        time,
        per_op: times,
    }
}

/// An async contender: `body(n, per_op)` makes the future of one run, which
/// `exec` awaits.
pub fn on<'a>(exec: &'a Exec, body: impl Fn(u64, bool) -> BoxFuture + 'a) -> Run<'a> {
    Box::new(move |n, per_op| exec.run(body(n, per_op)))
}

/// A contender with `setup` run before each run, untimed (e.g. emptying a
/// table that grows).
pub fn with_setup<'a>(mut setup: impl FnMut() + 'a, mut run: Run<'a>) -> Run<'a> {
    Box::new(move |n, per_op| {
        let cpu = process_cpu();
        setup();
        let used = process_cpu().saturating_sub(cpu);
        SETUP_CPU.store(used.as_nanos() as u64, Ordering::SeqCst);
        run(n, per_op)
    })
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

/// How a group is measured and reported.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `sqlite` or `postgres`.
    pub suite: &'static str,
    /// The scenario letter: `a` to `e`.
    pub scenario: &'static str,
    /// Criterion's group name.
    pub group: &'static str,
    /// Operations in one unit (one criterion iteration), for per-op times.
    pub ops_per_unit: u64,
    /// Interleaved: rounds, and units per contender per round.
    pub rounds: usize,
    pub batch: u64,
    /// Interleaved: time every operation (p50 and p99).
    pub latency: bool,
    /// Interleaved: measure the peak heap memory of every run.
    pub memory: bool,
    /// Criterion: samples and measurement time per contender.
    pub samples: usize,
    pub measurement: Duration,
    /// What a unit is, for the printed table (`insert`, `read`, ...).
    pub unit: &'static str,
}

impl Spec {
    pub fn new(suite: &'static str, scenario: &'static str, group: &'static str) -> Spec {
        Spec {
            suite,
            scenario,
            group,
            ops_per_unit: 1,
            rounds: 40,
            batch: 100,
            latency: false,
            memory: false,
            samples: 20,
            measurement: Duration::from_secs(2),
            unit: "op",
        }
    }

    /// Scenario e: reading `rows` rows in one unit, with peak heap memory
    /// (the same settings in sqlaio's benches and the peers').
    pub fn bulk(suite: &'static str, group: &'static str, rows: u64) -> Spec {
        Spec {
            rounds: 5,
            batch: 1,
            ops_per_unit: rows,
            memory: true,
            unit: "row",
            samples: 10,
            measurement: Duration::from_secs(5),
            ..Spec::new(suite, "e", group)
        }
    }

    /// Scenario d: one unit of `reads` reads spread over many tasks.
    pub fn loaded(suite: &'static str, group: &'static str, reads: u64) -> Spec {
        Spec {
            rounds: 30,
            batch: 1,
            ops_per_unit: reads,
            unit: "read",
            samples: 10,
            measurement: Duration::from_secs(3),
            ..Spec::new(suite, "d", group)
        }
    }
}

/// How the bench binary was asked to measure.
pub enum Mode {
    Criterion(Box<Criterion>),
    Interleaved,
}

impl Mode {
    /// `--interleaved` or criterion (configured from the other arguments).
    pub fn from_args() -> Mode {
        if std::env::args().any(|arg| arg == "--interleaved") {
            Mode::Interleaved
        } else {
            Mode::Criterion(Box::new(
                Criterion::default().without_plots().configure_from_args(),
            ))
        }
    }

    pub fn finish(self) {
        if let Mode::Criterion(c) = self {
            c.final_summary();
        }
    }

    /// Measures `contenders` (the first is the floor) as the mode says.
    pub fn measure(&mut self, spec: &Spec, contenders: &mut [(String, Run<'_>)]) {
        match self {
            Mode::Criterion(c) => criterion_group(c, spec, contenders),
            Mode::Interleaved => interleaved(spec, contenders),
        }
    }
}

fn criterion_group(c: &mut Criterion, spec: &Spec, contenders: &mut [(String, Run<'_>)]) {
    let mut group = c.benchmark_group(spec.group);
    group
        .sample_size(spec.samples.max(10))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(spec.measurement)
        .throughput(Throughput::Elements(spec.ops_per_unit));
    if spec.ops_per_unit > 1 || spec.memory {
        group.sampling_mode(SamplingMode::Flat);
    }
    for (name, run) in contenders.iter_mut() {
        group.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| run(iters, false).time)
        });
    }
    group.finish();
}

/// The `q` quantile of `values` (sorted in place), interpolated.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let at = (values.len() - 1) as f64 * q;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    values[low] + (values[high] - values[low]) * (at - low as f64)
}

/// What the interleaved mode measured for one contender.
struct Tally {
    times: Vec<Duration>,
    /// Process CPU time of each run (see [`cpu_of`]).
    cpu: Vec<Duration>,
    per_op: Vec<f64>,
    peaks: Vec<f64>,
}

/// The pause before each interleaved run: longer than any thread of sqlaio
/// or of a runtime checks for work before it sleeps.
const SETTLE: Duration = Duration::from_millis(1);

fn interleaved(spec: &Spec, contenders: &mut [(String, Run<'_>)]) {
    let count = contenders.len();
    eprintln!(
        "{}: {} contenders, {} rounds of {} x {} {}s",
        spec.group, count, spec.rounds, spec.batch, spec.ops_per_unit, spec.unit
    );
    // One untimed run each: connections warm, statements prepared.
    for (_, run) in contenders.iter_mut() {
        run(spec.batch.min(10), false);
    }
    let mut tallies: Vec<Tally> = (0..count)
        .map(|_| Tally {
            times: Vec::with_capacity(spec.rounds),
            cpu: Vec::with_capacity(spec.rounds),
            per_op: Vec::new(),
            peaks: Vec::new(),
        })
        .collect();
    for round in 0..spec.rounds {
        for k in 0..count {
            let i = (round + k) % count;
            // Let the threads of the run before finish their checks for
            // more work and sleep, so that their CPU time is not counted
            // in this run's.
            std::thread::sleep(SETTLE);
            if spec.memory {
                Counting::enable();
            }
            let (batch, cpu) = cpu_of(|| contenders[i].1(spec.batch, spec.latency));
            tallies[i].cpu.push(cpu);
            if spec.memory {
                let (_, peak) = Counting::now();
                Counting::disable();
                tallies[i].peaks.push(peak as f64);
            }
            tallies[i].times.push(batch.time);
            tallies[i]
                .per_op
                .extend(batch.per_op.iter().map(|&t| t as f64));
        }
    }
    report(spec, contenders, &mut tallies);
}

fn report(spec: &Spec, contenders: &[(String, Run<'_>)], tallies: &mut [Tally]) {
    let ops = (spec.batch * spec.ops_per_unit) as f64;
    let floor_times = tallies[0].times.clone();
    let floor_p50 = quantile(&mut tallies[0].per_op.clone(), 0.5);
    let floor_p99 = quantile(&mut tallies[0].per_op.clone(), 0.99);
    let floor_peak = quantile(&mut tallies[0].peaks.clone(), 0.5);
    let cpu_per_op = |tally: &Tally| {
        let mut per_op: Vec<f64> = tally
            .cpu
            .iter()
            .map(|t| t.as_nanos() as f64 / ops)
            .collect();
        quantile(&mut per_op, 0.5)
    };
    let floor_cpu = cpu_per_op(&tallies[0]);

    let mut header = String::from("| contender | time per ");
    header += spec.unit;
    header += " | ratio to floor | quartiles | CPU per ";
    header += spec.unit;
    header += " | CPU ratio |";
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|");
    if spec.latency {
        header += " p50 | p99 |";
        rule += "---:|---:|";
    }
    if spec.memory {
        header += " peak heap | ratio |";
        rule += "---:|---:|";
    }
    println!(
        "\n{} ({}, scenario {})\n\n{header}\n{rule}",
        spec.group, spec.suite, spec.scenario
    );

    let out = std::env::var_os("SQLAIO_BENCH_JSON");
    let mut lines = String::new();
    for (i, (name, _)) in contenders.iter().enumerate() {
        let tally = &mut tallies[i];
        let mut per_unit: Vec<f64> = tally
            .times
            .iter()
            .map(|t| t.as_nanos() as f64 / ops)
            .collect();
        let mut ratios: Vec<f64> = tally
            .times
            .iter()
            .zip(&floor_times)
            .map(|(t, f)| t.as_secs_f64() / f.as_secs_f64())
            .collect();
        let ns = quantile(&mut per_unit, 0.5);
        let (q1, q2, q3) = (
            quantile(&mut ratios, 0.25),
            quantile(&mut ratios, 0.5),
            quantile(&mut ratios, 0.75),
        );
        let cpu = cpu_per_op(tally);
        let cpu_ratio = cpu / floor_cpu;
        let mut row = format!(
            "| {name} | {} | {q2:.2}x | {q1:.2}-{q3:.2}x | {} | {cpu_ratio:.2}x |",
            fmt_ns(ns),
            fmt_ns(cpu)
        );
        let mut json = format!(
            "{{\"suite\":\"{}\",\"scenario\":\"{}\",\"group\":\"{}\",\"contender\":\"{}\",\"floor\":{},\"rounds\":{},\"ns_per_op\":{:.1},\"ratio\":{:.4},\"q1\":{:.4},\"q3\":{:.4},\"cpu_ns_per_op\":{:.1},\"cpu_ratio\":{:.4}",
            spec.suite, spec.scenario, spec.group, name, i == 0, spec.rounds, ns, q2, q1, q3, cpu, cpu_ratio
        );
        if spec.latency {
            let p50 = quantile(&mut tally.per_op, 0.5);
            let p99 = quantile(&mut tally.per_op, 0.99);
            let _ = write!(
                row,
                " {} ({:.2}x) | {} ({:.2}x) |",
                fmt_ns(p50),
                p50 / floor_p50,
                fmt_ns(p99),
                p99 / floor_p99
            );
            let _ = write!(
                json,
                ",\"p50_ns\":{p50:.1},\"p99_ns\":{p99:.1},\"p50_ratio\":{:.4},\"p99_ratio\":{:.4}",
                p50 / floor_p50,
                p99 / floor_p99
            );
        }
        if spec.memory {
            let peak = quantile(&mut tally.peaks, 0.5);
            let ratio = peak / floor_peak.max(1.0);
            let _ = write!(row, " {} | {ratio:.2}x |", fmt_bytes(peak));
            let _ = write!(json, ",\"peak_bytes\":{peak:.0},\"peak_ratio\":{ratio:.4}");
        }
        json.push_str("}\n");
        println!("{row}");
        lines.push_str(&json);
    }
    if let Some(path) = out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open SQLAIO_BENCH_JSON");
        file.write_all(lines.as_bytes()).expect("write results");
    }
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn fmt_bytes(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", bytes / 1024.0)
    }
}

/// Times `$n` runs of `$body` (which may `.await`), each on its own when
/// `$per_op` is true, and evaluates to a [`Batch`]. For contenders whose
/// operation borrows something mutably across awaits.
#[allow(unused_macros)]
macro_rules! time_loop {
    ($n:expr, $per_op:expr, $body:block) => {{
        let (n, per_op): (u64, bool) = ($n, $per_op);
        let mut times = Vec::with_capacity(if per_op { n as usize } else { 0 });
        let cpu = $crate::measure::process_cpu();
        let start = std::time::Instant::now();
        for _ in 0..n {
            let t = per_op.then(std::time::Instant::now);
            $body
            if let Some(t) = t {
                times.push(t.elapsed().as_nanos() as u64);
            }
        }
        let time = start.elapsed();
        $crate::measure::note_loop_cpu(cpu);
        $crate::measure::Batch {
            time,
            per_op: times,
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use time_loop;
