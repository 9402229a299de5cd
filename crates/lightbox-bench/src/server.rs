//! The server under test (the real `lightbox serve` binary), the floor (a
//! bare axum handler), the image transfers and the disk they are compared with.

use crate::cpu::Meter;
use crate::load::{drive, send, Stats};
use crate::seed::Seeded;
use crate::{RunArgs, Setup};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Server {
    child: tokio::process::Child,
    pub base: String,
    /// The DICOM receiver's address, when started with `--dicom-listen`.
    pub dicom: Option<SocketAddr>,
    /// Spawn to the first healthy `/healthz` answer.
    pub startup: Duration,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn start(args: &RunArgs, setup: &Setup) -> anyhow::Result<Server> {
        let database_url = (setup.backend == "postgresql").then_some(setup.database_url.as_str());
        Server::spawn(&args.lightbox, &args.data_dir, database_url, &[]).await
    }

    /// `lightbox serve` on `data_dir` (and PostgreSQL at `database_url`, else
    /// SQLite), with `extra` arguments, once it answers `/healthz`.
    pub async fn spawn(
        lightbox: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let mut command = tokio::process::Command::new(lightbox);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit-per-second",
                "0",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .env("LIGHTBOX_LOG", "warn")
            .env("LIGHTBOX_MAX_UPLOAD_BYTES", (64 * 1024 * 1024).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", lightbox.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // `dicom listening on ADDR` comes before the HTTP line, when asked for.
        let mut dicom = None;
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .context("the server did not start within 60 s")??
                .context("the server exited before listening")?;
            match announced(&line) {
                Announced::Dicom(addr) => dicom = Some(addr),
                Announced::Http(url) => break url,
                Announced::Other => {}
            }
        };
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let startup = started.elapsed();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            base,
            dicom,
            startup,
        })
    }
}

/// What a line of `lightbox serve`'s stdout announces.
#[derive(Debug, PartialEq)]
enum Announced {
    /// `dicom listening on 127.0.0.1:PORT`, printed before the HTTP line.
    Dicom(SocketAddr),
    /// `listening on http://127.0.0.1:PORT`.
    Http(String),
    Other,
}

fn announced(line: &str) -> Announced {
    if let Some(addr) = line.strip_prefix("dicom listening on ") {
        addr.trim()
            .parse()
            .map_or(Announced::Other, Announced::Dicom)
    } else if let Some(url) = line.strip_prefix("listening on ") {
        Announced::Http(url.trim().to_owned())
    } else {
        Announced::Other
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_start": read("/proc/loadavg").trim(),
    })
}

/// A bare axum handler answering every request with `page` from memory.
pub async fn floor(
    page: bytes::Bytes,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let app = axum::Router::new().route(
        "/v1/viewer/studies",
        axum::routing::get(move || {
            let page = page.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    page,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/viewer/studies?limit=100");
    // The handler runs in this process: its CPU is the bench's, not metered.
    let stats = drive(
        "floor: bare axum, page from memory",
        &Meter::none(),
        concurrency,
        duration,
        None,
        move |_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                send(client.get(&url)).await?;
                Ok(None)
            }
        },
    )
    .await;
    server.abort();
    Ok(stats)
}

pub struct ImageResults {
    pub upload: Stats,
    pub read: Stats,
    pub json: Value,
}

const FILE_BYTES: usize = 16 * 1024 * 1024;

/// Sequential write speed of the disk under `dir`: 1 MiB writes, then fsync
/// (an upload is also fsynced before it is acknowledged).
pub fn disk_write_speed(dir: &Path, total: u64) -> anyhow::Result<f64> {
    let path = dir.join("bench-disk-probe");
    let speed = disk_write_probe(&path, total)?;
    std::fs::remove_file(&path)?;
    Ok(speed)
}

/// [`disk_write_speed`] into the file `path`, which is left in place.
pub fn disk_write_probe(path: &Path, total: u64) -> anyhow::Result<f64> {
    let chunk = vec![0x5au8; 1024 * 1024];
    let started = Instant::now();
    let mut file = std::fs::File::create(path)?;
    let mut written = 0;
    while written < total {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    file.sync_all()?;
    let secs = started.elapsed().as_secs_f64();
    Ok(written as f64 / secs / 1e6)
}

pub async fn images(
    client: &reqwest::Client,
    base: &str,
    seeded: &Seeded,
    args: &RunArgs,
) -> anyhow::Result<ImageResults> {
    let token: Value = serde_json::from_slice(
        &send(
            client
                .post(format!("{base}/api/auth/v2/token"))
                .json(&json!({
                    "client_id": seeded.client_id,
                    "client_secret": seeded.client_secret,
                })),
        )
        .await?
        .0,
    )?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().context("no access_token")?
    );
    // A PNG signature, then incompressible bytes.
    let mut body = vec![0u8; FILE_BYTES];
    rand::Rng::fill(&mut rand::thread_rng(), &mut body[..]);
    body[..16].copy_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let body = bytes::Bytes::from(body);
    let files = (args.upload_bytes as usize).div_ceil(FILE_BYTES).max(1);

    let disk_before = disk_write_speed(&args.data_dir, args.upload_bytes)?;
    let mut upload = Stats::empty("image upload (16 MiB, 1 client)");
    let mut read = Stats::empty("image read (16 MiB, 1 client)");
    let mut read_urls = Vec::new();
    let mut upload_time = Duration::ZERO;
    for i in 0..files {
        let created: Value = serde_json::from_slice(
            &send(
                client
                    .post(format!("{base}/images/v1"))
                    .header("authorization", &bearer)
                    .json(&json!({
                        "file_name": format!("bench-{i}.png"),
                        "display_name": "Bench scan",
                        "file_type": "image/png",
                        "status": "PENDING",
                    })),
            )
            .await?
            .0,
        )?;
        let id = created["id"].as_str().context("image id")?.to_owned();
        let url = created["signed_url"]
            .as_str()
            .context("signed_url")?
            .to_owned();
        let t0 = Instant::now();
        // Streamed in 1 MiB chunks, as a client sending a file would.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .chunks(1024 * 1024)
            .map(|c| Ok(body.slice_ref(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let (_, timing) = send(
            client
                .put(&url)
                .header("content-type", "image/png")
                .header("content-length", FILE_BYTES)
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await?;
        let took = t0.elapsed();
        upload_time += took;
        upload.record_client(took);
        if let Some(t) = timing {
            let _ = upload.server.record(t.as_micros() as u64);
        }
        upload.requests += 1;
        let image: Value = serde_json::from_slice(
            &send(
                client
                    .get(format!("{base}/images/v1/{id}"))
                    .header("authorization", &bearer),
            )
            .await?
            .0,
        )?;
        read_urls.push(image["signed_url"].as_str().context("read url")?.to_owned());
    }
    upload.elapsed = upload_time;
    let mut read_time = Duration::ZERO;
    for url in &read_urls {
        let t0 = Instant::now();
        let (bytes, _) = send(client.get(url)).await?;
        anyhow::ensure!(bytes.len() == FILE_BYTES, "read {} bytes", bytes.len());
        let took = t0.elapsed();
        read_time += took;
        read.record_client(took);
        read.requests += 1;
    }
    read.elapsed = read_time;
    let disk_after = disk_write_speed(&args.data_dir, args.upload_bytes)?;
    let uploaded = (files * FILE_BYTES) as f64;
    let upload_mbps = uploaded / upload_time.as_secs_f64() / 1e6;
    let read_mbps = uploaded / read_time.as_secs_f64() / 1e6;
    let disk = (disk_before + disk_after) / 2.0;
    let json = json!({
        "files": files,
        "file_bytes": FILE_BYTES,
        "disk_seq_write_mb_s": [disk_before, disk_after],
        "upload_mb_s": upload_mbps,
        "upload_vs_disk": upload_mbps / disk,
        "read_mb_s": read_mbps,
    });
    eprintln!("images: {json}");
    Ok(ImageResults { upload, read, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dicom_line_comes_with_its_address_and_the_http_line_ends_the_wait() {
        assert_eq!(
            announced("dicom listening on 127.0.0.1:40123"),
            Announced::Dicom("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            announced("listening on http://127.0.0.1:8080\n"),
            Announced::Http("http://127.0.0.1:8080".into())
        );
        assert_eq!(announced("dicom listening on nowhere"), Announced::Other);
        assert_eq!(announced("migrations checked"), Announced::Other);
    }
}
