//! `lightbox-bench dicom-ingest`: N generated CT instances (`ct.rs`) sent with
//! dcmtk's `storescu`, over one association and over four in parallel (a
//! quarter of the files each), into Lightbox's DICOM receiver (SQLite, and
//! PostgreSQL with `--database-url`), Orthanc (`--orthanc`) and dcmtk's own
//! `storescp` (`--storescp`: files written, nothing indexed or fsynced; the
//! floor). Every receiver starts empty for each pass (Lightbox: a new
//! organization, so a new called AE title), and every pass checks that all
//! instances arrived. The disk's sequential write speed is probed before and
//! after, on the receivers' filesystem. Reported, never asserted.

use crate::cpu::{Meter, Usage};
use crate::ct::{self, CtSet, Written, QUARTERS};
use crate::orthanc::{Orthanc, OrthancConfig};
use crate::server::{self, Server};
use crate::targets;
use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct IngestArgs {
    /// CT instances to send (written once into the data directory, then reused).
    #[arg(long, default_value_t = 1000)]
    instances: u64,
    /// Rows and columns of every instance (16-bit: 512 makes 512 KiB files).
    #[arg(long, default_value_t = 512)]
    matrix: u16,
    /// The generated files, and the receivers' storage (emptied at each run).
    #[arg(long, default_value = "bench-runs/dicom")]
    data_dir: PathBuf,
    /// The `lightbox` binary (started with `--dicom-listen`). Without it, only
    /// the other receivers are measured (to check the harness).
    #[arg(long)]
    lightbox: Option<PathBuf>,
    /// `postgres://…`: Lightbox on PostgreSQL too (the database is created when
    /// missing; each pass adds an organization).
    #[arg(long)]
    database_url: Option<String>,
    /// Send to Orthanc too (Debian: `apt-get install -y orthanc`).
    #[arg(long)]
    orthanc: bool,
    /// The Orthanc server binary.
    #[arg(long, default_value = "/usr/sbin/Orthanc")]
    orthanc_binary: PathBuf,
    /// Send to dcmtk's `storescp` too: the floor (no index, no fsync).
    #[arg(long)]
    storescp: bool,
    /// Leave Nagle's algorithm on in storescu, storescp and Orthanc (dcmtk's
    /// default, as an unconfigured dcmtk-based sender has it): each instance
    /// then waits ~40 ms for a delayed ACK.
    #[arg(long)]
    nagle: bool,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The disk probe writes at least this much, so a small set still measures
/// the disk rather than the page cache's first megabytes.
const MIN_PROBE_BYTES: u64 = 256 * 1024 * 1024;
/// Our calling AE title.
const CALLING_AE: &str = "LIGHTBOX-BENCH";

/// dcmtk (storescu, storescp, and Orthanc's DICOM server, built on it) leaves
/// Nagle's algorithm on unless `TCP_NODELAY=1` is set: its small PDU writes
/// then wait for the peer's delayed ACK, 40 ms per instance (storescp took 21
/// instances/s over one association without it, 940 with it). Every dcmtk
/// process here gets it, so the passes measure the receivers, not that stall;
/// `--nagle` keeps dcmtk's default instead.
fn dcmtk_env(nagle: bool) -> [(&'static str, &'static str); 1] {
    [("TCP_NODELAY", if nagle { "0" } else { "1" })]
}

/// One pass: every instance sent to one receiver over `associations`
/// associations, from the first storescu's start to the last one's exit.
#[derive(Debug, Clone)]
pub struct Pass {
    pub receiver: String,
    pub associations: u64,
    pub instances: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The receiver's CPU (and PostgreSQL's) per instance, and steal.
    pub cpu: Option<Usage>,
    /// What the receiver holds afterwards, as checked.
    pub arrived: String,
}

impl Pass {
    pub fn per_second(&self) -> f64 {
        self.instances as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn over_disk(&self, disk_mb_s: f64) -> f64 {
        self.mb_per_second() / disk_mb_s.max(1e-9)
    }

    pub fn is_lightbox(&self) -> bool {
        self.receiver.starts_with("lightbox")
    }

    /// Instances/s against Orthanc's over as many associations, when measured.
    pub fn over_orthanc(&self, passes: &[Pass]) -> Option<f64> {
        passes
            .iter()
            .find(|p| p.receiver == "orthanc" && p.associations == self.associations)
            .map(|o| self.per_second() / o.per_second().max(1e-9))
    }

    pub fn json(&self, passes: &[Pass], disk_mb_s: f64) -> Value {
        json!({
            "receiver": self.receiver,
            "associations": self.associations,
            "instances": self.instances,
            "bytes": self.bytes,
            "seconds": self.elapsed.as_secs_f64(),
            "instances_per_s": self.per_second(),
            "mb_per_s": self.mb_per_second(),
            "over_disk": self.over_disk(disk_mb_s),
            "over_orthanc": self.over_orthanc(passes),
            "cpu_ms_per_instance": self.cpu.as_ref().map(Usage::json),
            "arrived": self.arrived,
        })
    }

    pub fn row(&self, passes: &[Pass], disk_mb_s: f64) -> String {
        format!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.2}× | {} | {} | {} |",
            self.receiver,
            self.associations,
            self.instances,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.mb_per_second(),
            self.over_disk(disk_mb_s),
            self.over_orthanc(passes)
                .map_or("—".to_owned(), |r| format!("{r:.2}×")),
            Usage::cells(self.cpu.as_ref()),
            self.arrived,
        )
    }
}

pub const TABLE_HEADER: &str = "| receiver | associations | instances | s | instances/s | MB/s | × disk | × Orthanc | receiver CPU ms/instance | PostgreSQL CPU ms/instance | steal % | arrived |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

/// A receiver, started and empty: where to send and how to count what arrived.
struct Receiver {
    name: String,
    addr: SocketAddr,
    called_ae: String,
    meter: Meter,
    check: Check,
    /// The receiver's process, alive until the pass ends (a Lightbox serves
    /// both passes of a backend and is owned by the caller instead).
    _process: Option<Box<dyn std::any::Any>>,
}

/// How a pass verifies that everything arrived.
enum Check {
    /// storescp: one file per instance in this folder.
    Files(PathBuf),
    /// Orthanc's `/statistics` counts.
    Orthanc(String),
    /// Lightbox: the organization's worklist (one study per Study Instance UID).
    Lightbox { base: String, api_key: String },
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    which("storescu")
        .context("dcmtk's storescu is needed: apt-get update && apt-get install -y dcmtk")?;
    let set = CtSet {
        instances: args.instances,
        matrix: args.matrix,
    };
    let written = ct::ensure(&set, &args.data_dir)?;
    // Nothing is deleted between passes: this VM's disk is mounted with
    // online discard, and a pass right after a deletion of half a gigabyte
    // measured 20-30 % slower. What a pass stores stays until the run ends.
    let receivers = args.data_dir.join("receivers");
    if receivers.exists() {
        // An earlier run's logs, or all it stored if it stopped early.
        std::fs::remove_dir_all(&receivers)?;
        tokio::time::sleep(AFTER_CLEANUP).await;
    }
    std::fs::create_dir_all(receivers.join("logs"))?;
    let client = reqwest::Client::new();
    let probe_bytes = written.bytes.max(MIN_PROBE_BYTES);
    let disk_before = server::disk_write_probe(&receivers.join("disk-probe-before"), probe_bytes)?;
    eprintln!(
        "disk sequential write (write + fsync of {probe_bytes} bytes): {disk_before:.0} MB/s"
    );

    let mut passes = Vec::new();
    let measure = async |receiver: Receiver, associations: u64| -> anyhow::Result<Pass> {
        let pass = send_all(
            &set,
            &written,
            &args.data_dir,
            &receiver,
            associations,
            args.nagle,
        )
        .await?;
        let pass = Pass {
            arrived: check(&receiver.check, &client, &written).await?,
            ..pass
        };
        eprintln!(
            "{} over {associations}: {:.1} instances/s, {:.1} MB/s ({})",
            pass.receiver,
            pass.per_second(),
            pass.mb_per_second(),
            pass.arrived
        );
        Ok(pass)
    };
    for associations in [1, QUARTERS] {
        if args.storescp {
            let dir = receivers.join(format!("storescp-{associations}"));
            passes.push(measure(start_storescp(&dir, args.nagle).await?, associations).await?);
        }
        if args.orthanc {
            let dir = receivers.join(format!("orthanc-{associations}"));
            passes.push(
                measure(
                    start_orthanc(&args.orthanc_binary, &dir, args.nagle).await?,
                    associations,
                )
                .await?,
            );
        }
    }
    if let Some(lightbox) = &args.lightbox {
        let backends = std::iter::once(("sqlite", None)).chain(
            args.database_url
                .as_deref()
                .map(|url| ("postgresql", Some(url))),
        );
        for (backend, url) in backends {
            if let Some(url) = url {
                crate::ensure_pg_database(url).await?;
            }
            let dir = receivers.join(format!("lightbox-{backend}"));
            let server = Server::spawn(lightbox, &dir, url, &["--dicom-listen", "127.0.0.1:0"])
                .await
                .context(
                    "start lightbox serve --dicom-listen (a build with the DICOM receiver?)",
                )?;
            let dicom = server.dicom.context(
                "lightbox serve printed no `dicom listening on` line: a build without the DICOM receiver?",
            )?;
            for associations in [1, QUARTERS] {
                let org =
                    create_org(lightbox, &dir, url, &format!("Ingest {associations}")).await?;
                let receiver = Receiver {
                    name: format!("lightbox ({backend})"),
                    addr: dicom,
                    called_ae: org.ae_title,
                    meter: Meter {
                        server_pid: server.pid(),
                        postgres: url.is_some_and(crate::is_local_postgres),
                    },
                    check: Check::Lightbox {
                        base: server.base.clone(),
                        api_key: org.api_key,
                    },
                    _process: None,
                };
                passes.push(measure(receiver, associations).await?);
            }
            drop(server);
        }
    }
    let disk_after = server::disk_write_probe(&receivers.join("disk-probe-after"), probe_bytes)?;
    let disk = (disk_before + disk_after) / 2.0;
    remove_stored(&receivers)?;

    let judged = targets::judge_ingest(&passes, disk, written.bytes / set.instances);
    let report = json!({
        "instances": set.instances,
        "matrix": set.matrix,
        "studies": written.studies,
        "series": written.series,
        "bytes": written.bytes,
        "disk_seq_write_mb_s": [disk_before, disk_after],
        "dcmtk_nagle": args.nagle,
        "results": passes.iter().map(|p| p.json(&passes, disk)).collect::<Vec<_>>(),
        "targets": targets::json(&judged),
        "machine": server::machine(),
    });
    println!(
        "\n## DICOM ingest — {} CT instances {m}×{m} 16-bit ({:.0} MB, {} studies, {} series), storescu, dcmtk {}\n",
        set.instances,
        written.bytes as f64 / 1e6,
        written.studies,
        written.series,
        if args.nagle { "with Nagle (its default)" } else { "with TCP_NODELAY=1" },
        m = set.matrix,
    );
    println!("{TABLE_HEADER}");
    for pass in &passes {
        println!("{}", pass.row(&passes, disk));
    }
    println!(
        "\ndisk sequential write (1 MiB writes + fsync, {:.0} MB): {disk_before:.0} MB/s before, {disk_after:.0} MB/s after",
        probe_bytes as f64 / 1e6
    );
    if !judged.is_empty() {
        println!("\n### Targets (issue #15), as measured in this run\n");
        print!("{}", targets::markdown(&judged));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

/// How long a run waits after deleting what an earlier run left, for the
/// disk's discards to settle.
const AFTER_CLEANUP: Duration = Duration::from_secs(30);

/// Removes everything the passes stored under `receivers`, keeping the logs.
fn remove_stored(receivers: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(receivers)? {
        let entry = entry?;
        if entry.file_name() == "logs" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Sends the whole set: one storescu over every file, or one per quarter at once.
async fn send_all(
    set: &CtSet,
    written: &Written,
    data_dir: &Path,
    receiver: &Receiver,
    associations: u64,
    nagle: bool,
) -> anyhow::Result<Pass> {
    ct::warm(set, data_dir)?;
    let root = set.dir(data_dir);
    let folders: Vec<PathBuf> = if associations == 1 {
        vec![root.clone()]
    } else {
        (0..QUARTERS).map(|q| root.join(format!("q{q}"))).collect()
    };
    let logs = data_dir.join("receivers/logs");
    let slug: String = receiver
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let before = receiver.meter.sample();
    let started = Instant::now();
    let mut children = Vec::new();
    for (k, folder) in folders.iter().enumerate() {
        let log_path = logs.join(format!("{slug}-{associations}-{k}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = tokio::process::Command::new("storescu")
            .envs(dcmtk_env(nagle))
            .args(["-aet", CALLING_AE, "-aec", &receiver.called_ae])
            // Every .dcm under the folder, in one association.
            .args(["+sd", "+r", "+sp", "*.dcm"])
            .arg(receiver.addr.ip().to_string())
            .arg(receiver.addr.port().to_string())
            .arg(folder)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("start storescu")?;
        children.push((child, log_path));
    }
    let mut failed = Vec::new();
    for (child, log_path) in &mut children {
        let status = child.wait().await?;
        if !status.success() {
            let log = std::fs::read_to_string(&*log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            failed.push(format!(
                "storescu {status} ({}): {}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
    }
    let elapsed = started.elapsed();
    let cpu = receiver.meter.since(before, set.instances);
    anyhow::ensure!(
        failed.is_empty(),
        "{} over {associations}: {}",
        receiver.name,
        failed.join("; ")
    );
    Ok(Pass {
        receiver: receiver.name.clone(),
        associations,
        instances: set.instances,
        bytes: written.bytes,
        elapsed,
        cpu,
        arrived: String::new(),
    })
}

/// How long a receiver may take to show what it acknowledged (say, an index
/// written after the C-STORE response); the pass's time is taken before.
const SETTLE: Duration = Duration::from_secs(10);

/// Checks that the receiver holds every instance (or, for Lightbox, every
/// study: its worklist has no instance count); fails the run otherwise.
async fn check(
    check: &Check,
    client: &reqwest::Client,
    written: &Written,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        let (complete, holds) = holds(check, client, written).await?;
        attempts += 1;
        if complete {
            return Ok(if attempts == 1 {
                holds
            } else {
                format!(
                    "{holds}, {:.1} s after the pass",
                    started.elapsed().as_secs_f64()
                )
            });
        }
        anyhow::ensure!(
            started.elapsed() < SETTLE,
            "after {SETTLE:?} the receiver holds {holds}; sent {} instances in {} studies",
            written.set.instances,
            written.studies
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the receiver holds everything sent, and what it holds.
async fn holds(
    check: &Check,
    client: &reqwest::Client,
    written: &Written,
) -> anyhow::Result<(bool, String)> {
    let expected = written.set.instances;
    match check {
        Check::Files(dir) => {
            let files = count_files(dir)?;
            Ok((files == expected, format!("{files} files")))
        }
        Check::Orthanc(base) => {
            let stats: Value = client
                .get(format!("{base}/statistics"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let count = |key: &str| stats[key].as_u64().unwrap_or(0);
            let (instances, studies) = (count("CountInstances"), count("CountStudies"));
            Ok((
                instances == expected && studies == written.studies,
                format!("{instances} instances, {studies} studies"),
            ))
        }
        Check::Lightbox { base, api_key } => {
            let mut studies = 0;
            let mut cursor: Option<String> = None;
            loop {
                // Cursors are base64url: safe in a query string as they are.
                let after = cursor
                    .as_ref()
                    .map_or(String::new(), |c| format!("&cursor={c}"));
                let page: Value = client
                    .get(format!("{base}/v1/viewer/studies?limit=100{after}"))
                    .bearer_auth(api_key)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                studies += page["studies"].as_array().map_or(0, Vec::len) as u64;
                cursor = page["cursor"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned);
                if cursor.is_none() || page["hasMore"] == json!(false) {
                    break;
                }
            }
            // Every instance's C-STORE succeeded: storescu exited 0.
            Ok((
                studies == written.studies,
                format!("{studies} studies on the worklist, every C-STORE acknowledged"),
            ))
        }
    }
}

fn count_files(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += count_files(&entry.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// dcmtk's storescp in `dir`, one process per association (`--fork`), writing
/// what it receives as is (`+B`).
async fn start_storescp(dir: &Path, nagle: bool) -> anyhow::Result<Receiver> {
    which("storescp").context("dcmtk's storescp: apt-get install -y dcmtk")?;
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    let port = free_port()?;
    let child = tokio::process::Command::new("storescp")
        .envs(dcmtk_env(nagle))
        .args(["--fork", "+B", "-aet", "STORESCP", "-od"])
        .arg(&files)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("storescp.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("start storescp")?;
    wait_for_port(port, "storescp").await?;
    Ok(Receiver {
        name: "storescp (floor)".into(),
        addr: (Ipv4Addr::LOCALHOST, port).into(),
        called_ae: "STORESCP".into(),
        // Its work is done in forked children, which this meter does not see.
        meter: Meter::none(),
        check: Check::Files(files),
        _process: Some(Box::new(child)),
    })
}

async fn start_orthanc(binary: &Path, dir: &Path, nagle: bool) -> anyhow::Result<Receiver> {
    let port = free_port()?;
    let orthanc = Orthanc::start(&OrthancConfig {
        binary,
        dir: dir.to_owned(),
        http_port: free_port()?,
        plugins: Vec::new(),
        dicom_port: Some(port),
        env: dcmtk_env(nagle).to_vec(),
        metadata_mode: None,
    })
    .await?;
    wait_for_port(port, "Orthanc's DICOM server").await?;
    Ok(Receiver {
        name: "orthanc".into(),
        addr: (Ipv4Addr::LOCALHOST, port).into(),
        called_ae: "ORTHANC".into(),
        meter: Meter {
            server_pid: orthanc.pid(),
            postgres: false,
        },
        check: Check::Orthanc(orthanc.base.clone()),
        _process: Some(Box::new(orthanc)),
    })
}

struct Org {
    ae_title: String,
    api_key: String,
}

/// A new organization through `lightbox admin create-org --json`: its called
/// AE title and an API key.
async fn create_org(
    lightbox: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    name: &str,
) -> anyhow::Result<Org> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let mut command = tokio::process::Command::new(lightbox);
    command
        .args([
            "admin",
            "create-org",
            "--json",
            "--name",
            name,
            "--owner-email",
        ])
        .arg(format!("ingest-{stamp}@bench.invalid"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("LIGHTBOX_LOG", "warn");
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let output = command
        .output()
        .await
        .context("lightbox admin create-org")?;
    anyhow::ensure!(
        output.status.success(),
        "lightbox admin create-org: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout)?;
    let text = |key: &str| {
        created[key].as_str().map(str::to_owned).with_context(|| {
            format!("create-org --json printed no {key} (a build without the DICOM receiver?)")
        })
    };
    Ok(Org {
        ae_title: text("dicom_ae_title")?,
        api_key: text("api_key")?,
    })
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}

/// A port free right now (the receiver binds it a moment later).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{what} is not listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn pass(receiver: &str, associations: u64, seconds: f64) -> Pass {
        Pass {
            receiver: receiver.into(),
            associations,
            instances: 1000,
            bytes: 525_000_000,
            elapsed: Duration::from_secs_f64(seconds),
            cpu: None,
            arrived: String::new(),
        }
    }

    #[test]
    fn rates_and_ratios_come_from_one_pass_and_its_orthanc_twin() {
        let passes = vec![
            pass("orthanc", 1, 20.0),
            pass("orthanc", 4, 10.0),
            pass("lightbox (sqlite)", 1, 4.0),
            pass("lightbox (sqlite)", 4, 1.0),
            pass("storescp (floor)", 4, 0.5),
        ];
        let lightbox = &passes[3];
        assert_eq!(lightbox.per_second(), 1000.0);
        assert_eq!(lightbox.mb_per_second(), 525.0);
        assert_eq!(lightbox.over_disk(1050.0), 0.5);
        // Against Orthanc over as many associations: 1000/s vs 100/s.
        assert_eq!(lightbox.over_orthanc(&passes), Some(10.0));
        assert_eq!(passes[2].over_orthanc(&passes), Some(5.0));
        assert_eq!(passes[1].over_orthanc(&passes), Some(1.0));
        assert_eq!(passes[2].over_orthanc(&passes[2..]), None);

        let row = lightbox.row(&passes, 1050.0);
        assert!(
            row.starts_with(
                "| lightbox (sqlite) | 4 | 1000 | 1.00 | 1000.0 | 525.0 | 0.50× | 10.00× |"
            ),
            "{row}"
        );
        let json = lightbox.json(&passes, 1050.0);
        assert_eq!(json["over_orthanc"], json!(10.0));
        assert_eq!(json["instances_per_s"], json!(1000.0));
        assert_eq!(
            passes[2].json(&passes[2..], 1.0)["over_orthanc"],
            Value::Null
        );
    }

    #[test]
    fn nested_files_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        for p in ["x", "a/y", "a/b/z"] {
            std::fs::write(dir.path().join(p), b"").unwrap();
        }
        assert_eq!(count_files(dir.path()).unwrap(), 3);
    }
}
