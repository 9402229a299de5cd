//! The targets, judged from one run's numbers and printed with them,
//! so a rerun says at once which hold. Reported, never asserted: a run on a
//! busy host (see the steal column) can miss what a quiet one meets.

use crate::ingest::Pass;
use crate::load::{ms, Stats};
use serde_json::{json, Value};

/// p99 server-side for any list page of 100, with any filters.
const LIST_P99_MS: f64 = 20.0;
/// A deep page costs no more than this times the first.
const DEEP_OVER_FIRST: f64 = 1.2;
const STARTUP_MS: f64 = 1000.0;
/// Issue 19: "pages render in well under 100 ms server time at 1M studies".
const WEB_PAGE_P99_MS: f64 = 100.0;
/// Image upload against the disk's sequential write speed.
const UPLOAD_OVER_DISK: f64 = 0.5;
/// DICOM ingest (issue #15): instances/s against Orthanc's, over as many
/// associations, and MB/s against the disk's sequential write.
const INGEST_OVER_ORTHANC: f64 = 5.0;
const INGEST_OVER_DISK: f64 = 0.5;

pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

/// One of the run's list scenarios (first page, filters, needles, combinations).
fn is_list_page(name: &str) -> bool {
    crate::list_scenarios().iter().any(|(n, _)| *n == name)
}

/// The targets the run has numbers for: a list page's p99, the deep page
/// against the first (p50, and CPU per request where measured), startup,
/// upload speed and index use.
pub fn judge(results: &[Stats], startups_ms: &[f64], images: &Value, plans: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    let lists: Vec<&Stats> = results
        .iter()
        .filter(|s| is_list_page(&s.name) && !s.server.is_empty())
        .collect();
    if !lists.is_empty() {
        let p99s: Vec<(&str, f64)> = lists
            .iter()
            .map(|s| (s.name.as_str(), ms(s.server.value_at_quantile(0.99))))
            .collect();
        let over: Vec<String> = p99s
            .iter()
            .filter(|(_, p99)| *p99 > LIST_P99_MS)
            .map(|(name, p99)| format!("{name} {p99:.2}"))
            .collect();
        let worst = p99s.iter().map(|(_, p99)| *p99).fold(0.0, f64::max);
        out.push(Target {
            what: format!("every list page p99 ≤ {LIST_P99_MS} ms server-side"),
            measured: if over.is_empty() {
                format!("worst {worst:.2} ms of {} scenarios", lists.len())
            } else {
                format!("over: {}", over.join("; "))
            },
            met: over.is_empty(),
        });
    }
    let find = |prefix: &str| lists.iter().find(|s| s.name.starts_with(prefix)).copied();
    if let (Some(first), Some(deep)) = (find("list: first page"), find("list: deep page")) {
        let p50 = |s: &Stats| ms(s.server.value_at_quantile(0.5));
        let latency = p50(deep) / p50(first).max(1e-9);
        let cpu = |s: &Stats| {
            s.cpu.map(|c| {
                c.server_ms_per_request.unwrap_or(0.0) + c.postgres_ms_per_request.unwrap_or(0.0)
            })
        };
        let work = cpu(deep).zip(cpu(first)).map(|(d, f)| d / f.max(1e-9));
        out.push(Target {
            what: format!("deep page ≤ {DEEP_OVER_FIRST}× the first"),
            measured: match work {
                Some(w) => format!("{latency:.2}× at p50, {w:.2}× in CPU per request"),
                None => format!("{latency:.2}× at p50"),
            },
            // "Costs": the work, where it was measured; latency at p50 also holds
            // the wait for a core, which the neighbours move.
            met: work.map_or(latency <= DEEP_OVER_FIRST, |w| w <= DEEP_OVER_FIRST),
        });
    }
    let pages: Vec<(&str, f64)> = results
        .iter()
        .filter(|s| s.name.starts_with("web: ") && !s.server.is_empty())
        .map(|s| (s.name.as_str(), ms(s.server.value_at_quantile(0.99))))
        .collect();
    if !pages.is_empty() {
        let (worst_name, worst) =
            pages
                .iter()
                .copied()
                .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
        out.push(Target {
            what: format!("every web page p99 < {WEB_PAGE_P99_MS} ms server-side"),
            measured: format!("worst {worst_name} {worst:.2} ms of {} pages", pages.len()),
            met: worst < WEB_PAGE_P99_MS,
        });
    }
    if let Some(slowest) = startups_ms.iter().copied().reduce(f64::max) {
        out.push(Target {
            what: format!("startup < {STARTUP_MS} ms"),
            measured: format!("slowest of {} starts {slowest:.0} ms", startups_ms.len()),
            met: slowest < STARTUP_MS,
        });
    }
    if let Some(ratio) = images["upload_vs_disk"].as_f64() {
        out.push(Target {
            what: format!("upload ≥ {UPLOAD_OVER_DISK}× the disk's sequential write"),
            measured: format!("{ratio:.2}×"),
            met: ratio >= UPLOAD_OVER_DISK,
        });
    }
    if let (Some(indexed), Some(not)) = (
        plans["summary"]["indexed"].as_u64(),
        plans["summary"]["not_indexed"].as_u64(),
    ) {
        out.push(Target {
            what: "every filter combination's plan served by an index".into(),
            measured: format!("{indexed} indexed, {not} not"),
            met: not == 0,
        });
    }
    out
}

/// The DICOM ingest targets, for every Lightbox pass: instances/s against
/// Orthanc's (when Orthanc was measured) and MB/s against the disk (the issue
/// asks it of large instances; the size is in the target's text).
pub fn judge_ingest(passes: &[Pass], disk_mb_s: f64, instance_bytes: u64) -> Vec<Target> {
    let mut out = Vec::new();
    for pass in passes.iter().filter(|p| p.is_lightbox()) {
        let over = if pass.associations == 1 {
            "1 association".to_owned()
        } else {
            format!("{} associations", pass.associations)
        };
        if let Some(ratio) = pass.over_orthanc(passes) {
            out.push(Target {
                what: format!(
                    "{}, {over}: ≥ {INGEST_OVER_ORTHANC}× Orthanc's instances/s",
                    pass.receiver
                ),
                measured: format!(
                    "{ratio:.2}× ({:.1} vs {:.1}/s)",
                    pass.per_second(),
                    pass.per_second() / ratio
                ),
                met: ratio >= INGEST_OVER_ORTHANC,
            });
        }
        let ratio = pass.over_disk(disk_mb_s);
        out.push(Target {
            what: format!(
                "{}, {over}: ≥ {INGEST_OVER_DISK}× the disk's sequential write ({} KiB instances)",
                pass.receiver,
                instance_bytes / 1024
            ),
            measured: format!(
                "{ratio:.2}× ({:.1} of {disk_mb_s:.0} MB/s)",
                pass.mb_per_second()
            ),
            met: ratio >= INGEST_OVER_DISK,
        });
    }
    out
}

pub fn markdown(targets: &[Target]) -> String {
    let mut s = String::from("| target | measured | met |\n|---|---|---|\n");
    for t in targets {
        let met = if t.met { "yes" } else { "**no**" };
        s.push_str(&format!("| {} | {} | {met} |\n", t.what, t.measured));
    }
    s
}

pub fn json(targets: &[Target]) -> Value {
    json!(targets
        .iter()
        .map(|t| json!({ "target": t.what, "measured": t.measured, "met": t.met }))
        .collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Usage;

    fn scenario(name: &str, server_ms: &[u64], cpu_ms: Option<f64>) -> Stats {
        let mut s = Stats::empty(name);
        for &v in server_ms {
            s.server.record(v * 1000).unwrap();
        }
        s.cpu = cpu_ms.map(|c| Usage {
            server_ms_per_request: Some(c),
            postgres_ms_per_request: None,
            steal_percent: 0.0,
        });
        s
    }

    #[test]
    fn names_the_list_pages_over_the_line_and_judges_the_rest() {
        let results = vec![
            scenario("list: first page", &[4; 100], Some(1.0)),
            scenario("list: deep page (cursor)", &[6; 100], Some(1.1)),
            scenario(
                "contains: rare (arthrogram)",
                &[[13; 98].as_slice(), &[28, 28]].concat(),
                None,
            ),
            scenario("by-uid lookup", &[50; 100], None),
        ];
        let images = json!({ "upload_vs_disk": 0.4 });
        let plans = json!({ "summary": { "indexed": 256, "not_indexed": 0 } });
        let t = judge(&results, &[40.0, 1200.0], &images, &plans);
        let by = |what: &str| t.iter().find(|t| t.what.starts_with(what)).unwrap();

        let list = by("every list page");
        assert!(!list.met);
        assert!(
            list.measured.contains("contains: rare (arthrogram) 28"),
            "{}",
            list.measured
        );
        assert!(
            !list.measured.contains("by-uid"),
            "not a list page: {}",
            list.measured
        );
        // 1.5x at p50, but 1.1x in CPU per request: the work is what the target is about.
        assert!(by("deep page").met, "{}", by("deep page").measured);
        assert!(!by("startup").met);
        assert!(!by("upload").met);
        assert!(by("every filter combination").met);
        assert!(markdown(&t).contains("| **no** |"));
    }

    #[test]
    fn ingest_is_judged_per_lightbox_pass_against_orthanc_and_the_disk() {
        let pass = |receiver: &str, associations, seconds| Pass {
            receiver: String::from(receiver),
            associations,
            instances: 1000,
            bytes: 525_000_000,
            elapsed: std::time::Duration::from_secs_f64(seconds),
            cpu: None,
            arrived: String::new(),
        };
        let passes = vec![
            pass("orthanc", 1, 20.0),
            pass("orthanc", 4, 10.0),
            pass("lightbox (sqlite)", 1, 5.0),
            pass("lightbox (sqlite)", 4, 1.0),
        ];
        let t = judge_ingest(&passes, 1000.0, 525_000);
        let by = |what: &str| {
            t.iter()
                .find(|t| t.what == what)
                .unwrap_or_else(|| panic!("{what}"))
        };
        assert_eq!(
            t.len(),
            4,
            "two targets per Lightbox pass, none for Orthanc"
        );
        // 200/s against 50/s: 4x, under the 5x line; 1000/s against 100/s: 10x.
        let single = by("lightbox (sqlite), 1 association: ≥ 5× Orthanc's instances/s");
        assert!(!single.met);
        assert_eq!(single.measured, "4.00× (200.0 vs 50.0/s)");
        assert!(by("lightbox (sqlite), 4 associations: ≥ 5× Orthanc's instances/s").met);
        // 105 and 525 MB/s against a 1000 MB/s disk.
        let disk = |n| {
            format!(
                "lightbox (sqlite), {n}: ≥ 0.5× the disk's sequential write (512 KiB instances)"
            )
        };
        assert!(!by(&disk("1 association")).met);
        assert!(by(&disk("4 associations")).met);
        assert_eq!(
            by(&disk("4 associations")).measured,
            "0.53× (525.0 of 1000 MB/s)"
        );

        // Without Orthanc in the run, only the disk is judged.
        assert_eq!(judge_ingest(&passes[2..], 1000.0, 525_000).len(), 2);
    }
}
