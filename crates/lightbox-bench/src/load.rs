//! Concurrent HTTP clients with latency histograms, client-side and (from the
//! `Server-Timing` header) server-side.

use crate::cpu::{Meter, Usage};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Stats {
    pub name: String,
    pub client: Histogram<u64>,
    pub server: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub concurrency: usize,
    pub first_error: Option<String>,
    /// CPU time per request and steal while the scenario ran.
    pub cpu: Option<Usage>,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds")
}

/// Microseconds (as the histograms hold them) to milliseconds.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Stats {
    pub fn empty(name: &str) -> Stats {
        Stats {
            name: name.into(),
            client: histogram(),
            server: histogram(),
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            concurrency: 1,
            first_error: None,
            cpu: None,
        }
    }
    pub fn record_client(&mut self, d: Duration) {
        let _ = self.client.record((d.as_micros() as u64).max(1));
    }
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn json(&self) -> Value {
        let server = (!self.server.is_empty()).then(|| {
            json!({
                "p50_ms": ms(self.server.value_at_quantile(0.5)),
                "p99_ms": ms(self.server.value_at_quantile(0.99)),
                "max_ms": ms(self.server.max()),
            })
        });
        json!({
            "name": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "concurrency": self.concurrency,
            "seconds": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput(),
            "client": {
                "p50_ms": ms(self.client.value_at_quantile(0.5)),
                "p99_ms": ms(self.client.value_at_quantile(0.99)),
                "max_ms": ms(self.client.max()),
            },
            "server": server,
            "cpu": self.cpu.as_ref().map(Usage::json),
        })
    }
    pub fn row(&self) -> String {
        let server = if self.server.is_empty() {
            "—| —".to_owned()
        } else {
            format!(
                "{:.2} | {:.2}",
                ms(self.server.value_at_quantile(0.5)),
                ms(self.server.value_at_quantile(0.99))
            )
        };
        format!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.0} | {} | {} |",
            self.name,
            server,
            ms(self.client.value_at_quantile(0.5)),
            ms(self.client.value_at_quantile(0.99)),
            self.requests,
            self.throughput(),
            self.errors,
            Usage::cells(self.cpu.as_ref())
        )
    }
}

/// What one request reports: the server's own time, if it said.
pub type Outcome = anyhow::Result<Option<Duration>>;

/// The columns of [`Stats::row`].
pub const TABLE_HEADER: &str = "| scenario | server p50 ms | server p99 ms | client p50 ms | client p99 ms | requests | req/s | errors | server CPU ms/req | PostgreSQL CPU ms/req | steal % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// Runs `request(n)` from `concurrency` tasks for `duration` (or until
/// `max_requests`), after a short warm-up that is not recorded; the CPU time
/// `meter` names is counted over the recorded part.
pub async fn drive<F, Fut>(
    name: &str,
    meter: &Meter,
    concurrency: usize,
    duration: Duration,
    max_requests: Option<u64>,
    request: F,
) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Warm-up: caches, connection pools, prepared statements.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = request(n).await;
        if max_requests.is_some() {
            break;
        }
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {elapsed}").expect("valid template"),
    );
    bar.set_message(name.to_owned());
    let before = meter.sample();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let request = request.clone();
        let counter = counter.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::empty("");
            loop {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if started.elapsed() >= duration
                    || max_requests.is_some_and(|m| stats_total(n) >= m)
                {
                    break;
                }
                let t0 = Instant::now();
                let outcome = request(n).await;
                let took = t0.elapsed();
                stats.requests += 1;
                match outcome {
                    Ok(server) => {
                        stats.record_client(took);
                        if let Some(server) = server {
                            let _ = stats.server.record((server.as_micros() as u64).max(1));
                        }
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
                bar.set_position(started.elapsed().as_millis() as u64);
            }
            stats
        }));
    }
    let mut total = Stats::empty(name);
    total.concurrency = concurrency;
    for task in tasks {
        let stats = task.await.expect("load task");
        total.client.add(&stats.client).expect("same bounds");
        total.server.add(&stats.server).expect("same bounds");
        total.requests += stats.requests;
        total.errors += stats.errors;
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
    }
    total.elapsed = started.elapsed();
    total.cpu = meter.since(before, total.requests);
    bar.finish_and_clear();
    total
}

// Requests are numbered from the warm-up on; the cap counts all of them (it is only a guard).
fn stats_total(n: u64) -> u64 {
    n
}

/// `Server-Timing: app;dur=1.234` → 1.234 ms.
pub fn server_timing(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("server-timing")?.to_str().ok()?;
    let dur = value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("dur="))?;
    let ms: f64 = dur.parse().ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// Sends `request`, demands a 2xx, reads the whole body; returns the body and the server time.
pub async fn send(
    request: reqwest::RequestBuilder,
) -> anyhow::Result<(bytes::Bytes, Option<Duration>)> {
    let response = request.send().await?;
    let status = response.status();
    let timing = server_timing(&response);
    let body = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok((body, timing))
}
