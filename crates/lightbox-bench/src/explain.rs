//! Query plans for every filter combination, and the store's own query time.

use crate::cpu::Meter;
use crate::data::{customer_id, COMMON_NEEDLE, RARE_NEEDLE, SHORT_NEEDLE};
use crate::load::Stats;
use crate::Setup;
use lightbox_domain::study::{RefFilter, Severity, StudyFilter, ViewerStatus};
use lightbox_domain::{OrgId, StudyId, UserId};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn org(setup: &Setup) -> anyhow::Result<OrgId> {
    Ok(OrgId::parse(&setup.seeded.org_id)?)
}

/// Every combination of the five column filters (each off or on), with no
/// description filter and with a rare, common and short needle, with and
/// without a cursor.
fn combinations(setup: &Setup) -> Vec<(String, StudyFilter)> {
    let user = UserId::from_trusted(setup.seeded.users[0].clone());
    let mut out = Vec::new();
    for mask in 0u32..32 {
        for needle in [
            None,
            Some(RARE_NEEDLE),
            Some(COMMON_NEEDLE),
            Some(SHORT_NEEDLE),
        ] {
            let mut filter = StudyFilter::default();
            let mut name = Vec::new();
            if mask & 1 != 0 {
                filter.assigned_to = Some(RefFilter::Is(user.clone()));
                name.push("assignedTo");
            }
            if mask & 2 != 0 {
                filter.express_customer_id = Some(RefFilter::Is(customer_id(7)));
                name.push("customer");
            }
            if mask & 4 != 0 {
                filter.is_cancelled = Some(true);
                name.push("cancelled");
            }
            if mask & 8 != 0 {
                filter.severity = Some(Severity::Stat);
                name.push("severity");
            }
            if mask & 16 != 0 {
                filter.viewer_status = Some(ViewerStatus::Incomplete);
                name.push("status");
            }
            if let Some(needle) = needle {
                filter.description_contains = Some(needle.to_owned());
                name.push(needle);
            }
            let name = if name.is_empty() {
                "(none)".to_owned()
            } else {
                name.join("+")
            };
            out.push((name, filter));
        }
    }
    out
}

/// The steps of a listing's plan that choose its page. The store picks the
/// page from `studies` in a subquery and joins only those rows to their users
/// and key (and sorts those again): SQLite runs the subquery (`st`) as a
/// co-routine read by `SCAN s`; PostgreSQL puts it under a nested `Limit`.
/// A SQLite search through the trigram index is one join led by the index
/// (`SCAN f VIRTUAL TABLE`), read until the page is full: judged whole.
fn page_choice(backend: &str, plan: &[String]) -> Vec<String> {
    if backend == "sqlite" {
        return plan
            .iter()
            .take_while(|l| l.trim() != "SCAN s")
            .cloned()
            .collect();
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(limit) = plan
        .iter()
        .skip(1)
        .position(|l| l.trim_start().starts_with("->  Limit"))
    else {
        return plan.to_vec();
    };
    let limit = limit + 1;
    let depth = indent(&plan[limit]);
    std::iter::once(plan[limit].clone())
        .chain(
            plan[limit + 1..]
                .iter()
                .take_while(|l| indent(l) > depth)
                .cloned(),
        )
        .collect()
}

/// Judges one plan: does it walk an organization-first index in id order
/// (no sort), or fetch through the trigram index (SQLite: in key order;
/// PostgreSQL: a rare trigram's postings in id order, or sorting only the
/// matches)?
fn judge(backend: &str, plan: &[String]) -> (&'static str, bool) {
    let whole = plan.join(" | ");
    if whole.contains("study_search_postings_pkey") {
        // PostgreSQL's walk of a rare trigram's postings (0019): its first
        // Limit picks the trigram (a sort of a few counts); the page's must
        // come from the postings index in id order, each row looked up by id
        // (through the primary key or a filter's index, which ends in id).
        let walks = whole.contains("Scan Backward using study_search_postings_pkey")
            && whole.contains("Index Scan using studies_")
            && !whole.contains("Seq Scan on studies");
        return ("rare trigram's studies, newest first", walks);
    }
    let text = page_choice(backend, plan).join(" | ");
    if backend == "sqlite" {
        let trigram = text.contains("VIRTUAL TABLE");
        let sorts = text.contains("USE TEMP B-TREE FOR ORDER BY");
        let scan = text.contains("SCAN st") && !text.contains("SCAN st USING");
        let org_index = text.contains("SEARCH st USING") && text.contains("org_id=?");
        if trigram {
            // In key order, which the store reads newest first and stops.
            ("trigram index, newest first", !sorts && !scan)
        } else if text.contains("COVERING INDEX studies_by_") && !scan {
            ("covering org-first filter index, keyset order", true)
        } else if org_index && !sorts {
            ("org-first index, keyset order", true)
        } else {
            ("scan or sort", false)
        }
    } else {
        let trigram = text.contains("studies_description_trgm");
        let seq = text.contains("Seq Scan on studies");
        let sorts = text.contains("Sort Key");
        // A bitmap over one filter's org-first index sorts only that filter's rows.
        let filter_bitmap = text.contains("Bitmap Index Scan on studies_by_");
        if seq {
            ("scan or sort", false)
        } else if trigram {
            ("trigram index, matches sorted", true)
        } else if text.contains("Index Only Scan Backward using studies_by_") {
            // The Sort above it orders the one page of ids the index gave.
            ("covering org-first filter index, keyset order", true)
        } else if !sorts {
            ("org-first index, keyset order", true)
        } else if filter_bitmap {
            ("org-first filter index, its rows sorted", true)
        } else {
            ("scan or sort", false)
        }
    }
}

pub async fn check(setup: &Setup) -> anyhow::Result<Value> {
    let org = org(setup)?;
    let after = StudyId::from_trusted(format!("stu_{}", "7".repeat(32)));
    let mut rows = Vec::new();
    let (mut good, mut bad) = (0, 0);
    for (name, filter) in combinations(setup) {
        for cursor in [None, Some(&after)] {
            let plan = setup
                .store
                .explain_list_studies(org, &filter, 100, cursor)
                .await?;
            let (kind, ok) = judge(setup.backend, &plan);
            if ok {
                good += 1;
            } else {
                bad += 1;
                eprintln!(
                    "PLAN NOT INDEXED: {name} cursor={}:\n  {}",
                    cursor.is_some(),
                    plan.join("\n  ")
                );
            }
            rows.push(json!({ "filters": name, "cursor": cursor.is_some(), "kind": kind, "ok": ok, "plan": plan }));
        }
    }
    let mut kinds = std::collections::BTreeMap::<String, u32>::new();
    for row in &rows {
        *kinds
            .entry(row["kind"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    eprintln!("plans: {good} indexed, {bad} not: {kinds:?}");
    Ok(json!({ "summary": { "indexed": good, "not_indexed": bad, "kinds": kinds }, "plans": rows }))
}

/// The same list queries through `Store::list_studies` in this process, one at
/// a time: SQL plus row mapping, without HTTP, auth, audit or JSON.
/// `meter` counts this process (the store runs in it) and PostgreSQL.
pub async fn store_timings(
    setup: &Setup,
    meter: &Meter,
    duration: Duration,
) -> anyhow::Result<Vec<Stats>> {
    let org = org(setup)?;
    let user = UserId::from_trusted(setup.seeded.users[1].clone());
    let cases: Vec<(&str, StudyFilter)> = vec![
        ("store: first page", StudyFilter::default()),
        (
            "store: severity=stat",
            StudyFilter {
                severity: Some(Severity::Stat),
                ..Default::default()
            },
        ),
        (
            "store: assignedTo=user",
            StudyFilter {
                assigned_to: Some(RefFilter::Is(user)),
                ..Default::default()
            },
        ),
        (
            "store: contains rare",
            StudyFilter {
                description_contains: Some(RARE_NEEDLE.into()),
                ..Default::default()
            },
        ),
        (
            "store: contains common",
            StudyFilter {
                description_contains: Some(COMMON_NEEDLE.into()),
                ..Default::default()
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, filter) in cases {
        let mut stats = Stats::empty(name);
        let before = meter.sample();
        let started = Instant::now();
        let per_case = duration.min(Duration::from_secs(2));
        while started.elapsed() < per_case {
            let t0 = Instant::now();
            setup.store.list_studies(org, &filter, 100, None).await?;
            stats.record_client(t0.elapsed());
            stats.requests += 1;
        }
        stats.elapsed = started.elapsed();
        stats.cpu = meter.since(before, stats.requests);
        out.push(stats);
    }
    Ok(out)
}
