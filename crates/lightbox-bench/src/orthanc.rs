//! Orthanc side by side: the same studies (one small DICOM instance each),
//! the same searches (by UID, by description, newest first with limit 100)
//! through Orthanc's REST API and DICOMweb, against Lightbox at the same N.
//! [`Orthanc::start`] also serves `dicom-ingest`, with Orthanc's DICOM port on.

use crate::cpu::Meter;
use crate::data::{GenStudy, Generator, COMMON_NEEDLE, RARE_NEEDLE};
use crate::load::{drive, send, Stats};
use crate::seed::SEED;
use crate::{server, RunArgs};
use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use rand::Rng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct OrthancArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The Orthanc server binary (Debian: `apt-get install orthanc orthanc-dicomweb`).
    #[arg(long, default_value = "/usr/sbin/Orthanc")]
    orthanc: PathBuf,
    /// The DICOMweb plugin.
    #[arg(
        long,
        default_value = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
    )]
    dicomweb_plugin: PathBuf,
    #[arg(long, default_value_t = 18042)]
    orthanc_port: u16,
}

pub struct Orthanc {
    child: tokio::process::Child,
    pub base: String,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// How to start an Orthanc: its binary, its own folder (storage, index, config
/// and log), its HTTP port, its plugins and, for DICOM ingest, its DICOM port.
pub struct OrthancConfig<'a> {
    pub binary: &'a Path,
    pub dir: PathBuf,
    pub http_port: u16,
    pub plugins: Vec<&'a Path>,
    /// Accept C-STORE here (AE title `ORTHANC`, any called AE title accepted).
    pub dicom_port: Option<u16>,
    /// Environment variables for the process.
    pub env: Vec<(&'a str, &'a str)>,
    /// The DICOMweb plugin's `StudiesMetadata` and `SeriesMetadata`; None
    /// leaves its default (`Full`: every instance's file is read).
    pub metadata_mode: Option<&'a str>,
}

impl Orthanc {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts Orthanc and waits until its REST API answers.
    pub async fn start(config: &OrthancConfig<'_>) -> anyhow::Result<Orthanc> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir.join("storage"))?;
        let mut settings = json!({
            "Name": "lightbox-bench",
            "StorageDirectory": dir.join("storage"),
            "IndexDirectory": dir.join("storage"),
            "HttpPort": config.http_port,
            "DicomServerEnabled": false,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            // Files as received, each fsynced before it is acknowledged (Orthanc's
            // default, as Lightbox does): the same work on both sides.
            "StorageCompression": false,
            "SyncStorageArea": true,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "Plugins": config.plugins,
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
            "HttpThreadsCount": 50,
        });
        if let Some(mode) = config.metadata_mode {
            settings["DicomWeb"]["StudiesMetadata"] = json!(mode);
            settings["DicomWeb"]["SeriesMetadata"] = json!(mode);
        }
        if let Some(port) = config.dicom_port {
            settings["DicomServerEnabled"] = json!(true);
            settings["DicomAet"] = json!("ORTHANC");
            settings["DicomPort"] = json!(port);
            settings["DicomCheckCalledAet"] = json!(false);
        }
        let config_path = dir.join("bench-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&settings)?)?;
        let child = tokio::process::Command::new(config.binary)
            .arg(&config_path)
            .envs(config.env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("orthanc.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", config.binary.display()))?;
        let base = format!("http://127.0.0.1:{}", config.http_port);
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/system")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "Orthanc did not start; see {}",
                dir.join("orthanc.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("Orthanc up in {:.0?}", started.elapsed());
        Ok(Orthanc { child, base })
    }
}

async fn start_orthanc(args: &OrthancArgs) -> anyhow::Result<Orthanc> {
    Orthanc::start(&OrthancConfig {
        binary: &args.orthanc,
        dir: args.run.data_dir.join("orthanc"),
        http_port: args.orthanc_port,
        plugins: vec![&args.dicomweb_plugin],
        dicom_port: None,
        env: Vec::new(),
        // What the `orthanc` comparison has always measured (no metadata requests).
        metadata_mode: Some("MainDicomTags"),
    })
    .await
}

// --- A small DICOM Part 10 writer (explicit VR little endian): enough for Orthanc's index.

pub fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
}

/// Civil date and time (UTC) of Unix milliseconds, as DICOM DA and TM.
pub fn da_tm(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", sod / 3600, sod / 60 % 60, sod % 60),
    )
}

const SECONDARY_CAPTURE: &[u8] = b"1.2.840.10008.5.1.4.1.1.7";

/// The preamble, `DICM` and file meta of a Secondary Capture instance in
/// Explicit VR Little Endian: the start of every file Orthanc is loaded with.
pub fn secondary_capture_header(sop_instance: &str) -> Vec<u8> {
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", SECONDARY_CAPTURE);
    element(&mut meta, 0x0002, 0x0003, b"UI", sop_instance.as_bytes());
    element(&mut meta, 0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1");
    element(
        &mut meta,
        0x0002,
        0x0012,
        b"UI",
        b"1.2.826.0.1.3680043.8.498.1",
    );
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(
        &mut out,
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(&meta);
    out
}

pub fn dicom(study: &GenStudy) -> Vec<u8> {
    let sop_instance = format!("{}.1.1", study.uid);
    let mut out = secondary_capture_header(&sop_instance);
    let (da, tm) = da_tm(study.created_at);
    let modality = match study.description.split(' ').next().unwrap_or("OT") {
        "PET/CT" => "PT",
        m => m,
    };
    let patient = format!("P{:07}", study.index % 400_000);
    element(&mut out, 0x0008, 0x0016, b"UI", SECONDARY_CAPTURE);
    element(&mut out, 0x0008, 0x0018, b"UI", sop_instance.as_bytes());
    element(&mut out, 0x0008, 0x0020, b"DA", da.as_bytes());
    element(&mut out, 0x0008, 0x0030, b"TM", tm.as_bytes());
    element(&mut out, 0x0008, 0x0050, b"SH", study.accession.as_bytes());
    element(&mut out, 0x0008, 0x0060, b"CS", modality.as_bytes());
    element(
        &mut out,
        0x0008,
        0x1030,
        b"LO",
        study.description.as_bytes(),
    );
    element(
        &mut out,
        0x0010,
        0x0010,
        b"PN",
        format!("BENCH^{patient}").as_bytes(),
    );
    element(&mut out, 0x0010, 0x0020, b"LO", patient.as_bytes());
    element(&mut out, 0x0020, 0x000D, b"UI", study.uid.as_bytes());
    element(
        &mut out,
        0x0020,
        0x000E,
        b"UI",
        format!("{}.1", study.uid).as_bytes(),
    );
    element(
        &mut out,
        0x0020,
        0x0010,
        b"SH",
        format!("{}", study.index % 100_000).as_bytes(),
    );
    element(&mut out, 0x0020, 0x0011, b"IS", b"1");
    element(&mut out, 0x0020, 0x0013, b"IS", b"1");
    out
}

async fn load(
    orthanc: &Orthanc,
    client: &reqwest::Client,
    studies: u64,
    now_ms: i64,
    assignees: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let stats: Value = serde_json::from_slice(
        &send(client.get(format!("{}/statistics", orthanc.base)))
            .await?
            .0,
    )?;
    let have = stats["CountStudies"].as_u64().unwrap_or(0);
    if have >= studies {
        eprintln!("Orthanc already holds {have} studies");
        return Ok(());
    }
    let bar = crate::seed::bar(studies, "loading Orthanc");
    bar.set_position(have);
    let started = Instant::now();
    let generator = Generator::new(SEED, studies, assignees, now_ms).skip(have as usize);
    let url = format!("{}/instances", orthanc.base);
    futures_util::stream::iter(generator)
        .map(|study| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                send(
                    client
                        .post(&url)
                        .header("content-type", "application/dicom")
                        .body(dicom(&study)),
                )
                .await
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|result| {
            if let Err(e) = result {
                bar.println(format!("Orthanc rejected an instance: {e:#}"));
            }
            bar.inc(1);
            std::future::ready(())
        })
        .await;
    bar.finish();
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded Orthanc: {} studies in {took:.1}s ({:.0}/s)",
        studies - have,
        (studies - have) as f64 / took
    );
    Ok(())
}

pub async fn run(args: OrthancArgs) -> anyhow::Result<()> {
    let setup = crate::prepare(&args.run).await?;
    let seeded = setup.seeded.clone();
    let n = seeded.studies;
    let orthanc = start_orthanc(&args).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    load(
        &orthanc,
        &client,
        n,
        seeded.now_ms,
        seeded.users.len(),
        args.run.concurrency.max(4),
    )
    .await?;
    let lightbox = server::Server::start(&args.run, &setup).await?;
    let duration = Duration::from_secs_f64(args.run.seconds);
    let conc = args.run.concurrency;
    let auth = format!("Bearer {}", seeded.api_key);

    type Make = Arc<dyn Fn() -> reqwest::RequestBuilder + Send + Sync>;
    let (ob, lb) = (orthanc.base.clone(), lightbox.base.clone());
    // Orthanc's `/tools/find` with the query `query()` makes.
    let find = |query: fn(u64) -> Value| -> Make {
        let (client, url) = (client.clone(), format!("{ob}/tools/find"));
        Arc::new(move || client.post(&url).json(&query(n)))
    };
    // A GET of `base` + what `path()` makes, with `auth` when given.
    let get = |base: &str, auth: Option<&str>, path: fn(u64) -> String| -> Make {
        let (client, base) = (client.clone(), base.to_owned());
        let auth = auth.map(str::to_owned);
        Arc::new(move || {
            let request = client.get(format!("{base}{}", path(n)));
            match &auth {
                Some(auth) => request.header("authorization", auth),
                None => request,
            }
        })
    };
    let lightbox_get = |path: fn(u64) -> String| get(&lb, Some(&auth), path);
    #[rustfmt::skip]
    let pairs: Vec<(&str, Make, Make)> = vec![
        (
            "by UID",
            find(|n| json!({"Level": "Study", "Expand": true,
                "Query": {"StudyInstanceUID": crate::data::study_uid(rand::thread_rng().gen_range(0..n))}})),
            lightbox_get(|n| format!("/v1/viewer/studies/by-uid/{}",
                crate::data::study_uid(rand::thread_rng().gen_range(0..n)))),
        ),
        (
            "description contains (rare)",
            find(|_| json!({"Level": "Study", "Expand": true, "Limit": 100, "CaseSensitive": false,
                "Query": {"StudyDescription": format!("*{RARE_NEEDLE}*")}})),
            lightbox_get(|_| format!("/v1/viewer/studies?limit=100&studyDescription={RARE_NEEDLE}")),
        ),
        (
            "description contains (common)",
            find(|_| json!({"Level": "Study", "Expand": true, "Limit": 100, "CaseSensitive": false,
                "Query": {"StudyDescription": format!("*{COMMON_NEEDLE}*")}})),
            lightbox_get(|_| format!("/v1/viewer/studies?limit=100&studyDescription={COMMON_NEEDLE}")),
        ),
        (
            "first 100 (Orthanc: no order in 1.10)",
            find(|_| json!({"Level": "Study", "Expand": true, "Limit": 100, "Query": {}})),
            lightbox_get(|_| "/v1/viewer/studies?limit=100".to_owned()),
        ),
        (
            "DICOMweb QIDO description (rare)",
            get(&ob, None, |_| format!(
                "/dicom-web/studies?limit=100&fuzzymatching=false&StudyDescription=*{}*",
                RARE_NEEDLE.to_uppercase()
            )),
            lightbox_get(|_| format!("/v1/viewer/studies?limit=100&studyDescription={RARE_NEEDLE}")),
        ),
    ];

    let mut rows = Vec::new();
    let mut results = Vec::new();
    for (label, orthanc_request, lightbox_request) in pairs {
        // Both must answer the same question: compare the result counts once.
        let count = |v: Value| match v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o
                .get("studies")
                .and_then(Value::as_array)
                .map_or(1, Vec::len),
            _ => 0,
        };
        let o_count = count(serde_json::from_slice(&send(orthanc_request()).await?.0)?);
        let l_count = count(serde_json::from_slice(&send(lightbox_request()).await?.0)?);
        eprintln!("{label}: Orthanc returned {o_count} studies, Lightbox {l_count}");
        let make = orthanc_request.clone();
        let o = drive(
            &format!("orthanc: {label}"),
            &Meter::none(),
            conc,
            duration,
            None,
            move |_| {
                let make = make.clone();
                async move { send(make()).await.map(|_| None) }
            },
        )
        .await;
        let make = lightbox_request.clone();
        let l = drive(
            &format!("lightbox: {label}"),
            &Meter::none(),
            conc,
            duration,
            None,
            move |_| {
                let make = make.clone();
                async move { send(make()).await.map(|(_, t)| t) }
            },
        )
        .await;
        let p50 = |s: &Stats| s.client.value_at_quantile(0.5) as f64 / 1000.0;
        let p99 = |s: &Stats| s.client.value_at_quantile(0.99) as f64 / 1000.0;
        let row = format!(
            "| {label} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1}x | {:.1}x | {} / {} |",
            p50(&o), p99(&o), o.throughput(), p50(&l), p99(&l), l.throughput(),
            p50(&o) / p50(&l), o.throughput().max(1e-9).recip() * l.throughput(), o.errors, l.errors
        );
        eprintln!("{row}");
        if let Some(e) = o.first_error.as_ref().or(l.first_error.as_ref()) {
            eprintln!("  first error: {e}");
        }
        rows.push(row);
        results.push(json!({ "search": label, "orthanc": o.json(), "lightbox": l.json() }));
    }
    println!(
        "\n## Orthanc vs Lightbox ({}) — {n} studies, {conc} clients, client-side latency\n",
        setup.backend
    );
    println!("| search | Orthanc p50 ms | Orthanc p99 ms | Orthanc req/s | Lightbox p50 ms | Lightbox p99 ms | Lightbox req/s | p50 ratio | throughput ratio | errors O / L |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!("{row}");
    }
    if let Some(path) = &args.run.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&json!({ "studies": n, "results": results }))?,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_dates_are_civil_utc() {
        assert_eq!(da_tm(0), ("19700101".into(), "000000".into()));
        // 2024-02-29T23:59:59Z
        assert_eq!(
            da_tm(1_709_251_199_000),
            ("20240229".into(), "235959".into())
        );
    }

    #[test]
    fn dicom_files_are_part_10_with_even_values() {
        let study = Generator::new(SEED, 1, 0, 1_709_251_199_000)
            .next()
            .unwrap();
        let file = dicom(&study);
        assert_eq!(&file[128..132], b"DICM");
        assert_eq!(file.len() % 2, 0);
        let text = String::from_utf8_lossy(&file);
        assert!(text.contains(&study.uid));
        assert!(text.contains(&study.description));
    }
}
