//! `lightbox studies …`: the Viewer worklist from the command line.

use super::{opt, print_json, record_table, table, Remote};
use anyhow::Context;
use clap::{Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use lightbox_client::{
    Client, NewStudy, Severity, Study, StudyFilter, StudyRef, StudyViewerStatus,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct StudiesArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: StudiesCommand,
}

#[derive(Subcommand, Debug)]
enum StudiesCommand {
    /// List studies, newest first (follows pages).
    List(ListArgs),
    /// Create one study.
    Create(CreateArgs),
    /// Show a study, by id (stu_…) or Study Instance UID.
    Get { study: String },
    /// Cancel a study, by id (stu_…) or Study Instance UID, and show it.
    Cancel { study: String },
    /// Create every study in a CSV file, several at a time, reporting each failed row.
    ///
    /// Columns (header row required, any order): studyInstanceUid, studyDescription,
    /// severity (default normal), assignedTo, expressCustomerId, metadata (a JSON
    /// object) and metadata.KEY columns. snake_case names work too.
    Import(ImportArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// normal, high or stat.
    #[arg(long)]
    severity: Option<Severity>,
    /// Viewer status: incomplete or complete.
    #[arg(long)]
    status: Option<StudyViewerStatus>,
    /// A user id, or `null` for unassigned studies.
    #[arg(long)]
    assigned_to: Option<String>,
    /// An Express customer id, or `null` for studies without one.
    #[arg(long)]
    express_customer: Option<String>,
    /// true: only cancelled studies; false: only active ones.
    #[arg(long)]
    cancelled: Option<bool>,
    /// Case-insensitive part of the description.
    #[arg(long)]
    description: Option<String>,
    /// Show at most this many studies.
    #[arg(long, default_value_t = 100, conflicts_with = "all")]
    limit: usize,
    /// Show every matching study.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The DICOM Study Instance UID.
    #[arg(long)]
    uid: String,
    #[arg(long)]
    description: String,
    /// normal, high or stat.
    #[arg(long, default_value = "normal")]
    severity: Severity,
    /// The id of the user to assign (usr_…).
    #[arg(long)]
    assigned_to: Option<String>,
    /// An Express customer id (cus_…).
    #[arg(long)]
    express_customer: Option<String>,
    /// KEY=VALUE, repeatable.
    #[arg(long = "metadata", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// Studies created at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Count rows whose Study Instance UID already exists as skipped, not failed
    /// (makes re-running an import safe).
    #[arg(long)]
    skip_existing: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

pub async fn run(args: StudiesArgs) -> anyhow::Result<()> {
    let remote = args.remote;
    let client = remote.viewer()?;
    match args.command {
        StudiesCommand::List(a) => list(&client, &remote, a).await,
        StudiesCommand::Create(a) => {
            let mut new = NewStudy::new(a.uid, a.description, a.severity);
            new.assigned_to = a.assigned_to;
            new.express_customer_id = a.express_customer;
            if !a.metadata.is_empty() {
                new.metadata = Some(a.metadata.into_iter().collect());
            }
            let study = client.create_study(&new).await?;
            show(&remote, &study)
        }
        StudiesCommand::Get { study } => {
            let study = client.find_study(&StudyRef::parse(&study)).await?;
            show(&remote, &study)
        }
        StudiesCommand::Cancel { study } => {
            let study = StudyRef::parse(&study);
            client.cancel_study(&study).await?;
            let study = client.find_study(&study).await?;
            show(&remote, &study)
        }
        StudiesCommand::Import(a) => import(&client, &remote, a).await,
    }
}

async fn list(client: &Client, remote: &Remote, a: ListArgs) -> anyhow::Result<()> {
    let filter = StudyFilter {
        assigned_to: a.assigned_to,
        express_customer_id: a.express_customer,
        is_cancelled: a.cancelled,
        severity: a.severity,
        study_description: a.description,
        study_viewer_status: a.status,
        limit: Some(if a.all {
            100
        } else {
            a.limit.clamp(1, 100) as u32
        }),
    };
    let take = if a.all { usize::MAX } else { a.limit };
    let studies: Vec<Study> = client.list_studies(filter).take(take).try_collect().await?;
    if remote.json {
        return print_json(&studies);
    }
    let mut t = table(&[
        "STUDY ID",
        "STUDY INSTANCE UID",
        "DESCRIPTION",
        "SEVERITY",
        "STATUS",
        "CANCELLED",
        "ASSIGNED TO",
        "CREATED",
    ]);
    for s in &studies {
        t.add_row(vec![
            s.study_id.clone(),
            s.study_instance_uid.clone(),
            s.study_description.clone(),
            s.severity.to_string(),
            s.study_viewer_status.to_string(),
            yes_no(s.is_cancelled),
            s.assigned_to
                .as_ref()
                .map(|u| u.email.clone())
                .unwrap_or_default(),
            opt(&s.created_at.map(|t| t.format("%Y-%m-%d %H:%M:%S"))),
        ]);
    }
    println!("{t}");
    eprintln!(
        "{} {}",
        studies.len(),
        if studies.len() == 1 {
            "study"
        } else {
            "studies"
        }
    );
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn show(remote: &Remote, s: &Study) -> anyhow::Result<()> {
    if remote.json {
        return print_json(s);
    }
    let user = |u: &Option<lightbox_client::UserReference>| {
        u.as_ref()
            .map(|u| format!("{} ({})", u.email, u.user_id))
            .unwrap_or_default()
    };
    let metadata = s
        .metadata
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let t = record_table(vec![
        ("studyId", s.study_id.clone()),
        ("studyInstanceUid", s.study_instance_uid.clone()),
        ("studyDescription", s.study_description.clone()),
        ("severity", s.severity.to_string()),
        ("studyViewerStatus", s.study_viewer_status.to_string()),
        ("isCancelled", yes_no(s.is_cancelled)),
        ("cancelledAt", opt(&s.cancelled_at.map(|t| t.to_rfc3339()))),
        ("assignedTo", user(&s.assigned_to)),
        (
            "expressCustomer",
            opt(&s.express_customer.as_ref().map(|c| &c.express_customer_id)),
        ),
        (
            "createdByApiKey",
            opt(&s.created_by_api_key.as_ref().map(|k| &k.description)),
        ),
        ("createdAt", opt(&s.created_at.map(|t| t.to_rfc3339()))),
        ("updatedAt", opt(&s.updated_at.map(|t| t.to_rfc3339()))),
        ("metadata", metadata),
    ]);
    println!("{t}");
    Ok(())
}

/// One data row of an import file: its line number and what it asks for.
struct Row {
    line: u64,
    uid: String,
    study: Result<NewStudy, String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Failure {
    line: u64,
    study_instance_uid: String,
    /// The HTTP status, when the server refused the row.
    status: Option<u16>,
    error: String,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Created {
    line: u64,
    study_id: String,
    study_instance_uid: String,
}

#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ImportReport {
    rows: usize,
    created: Vec<Created>,
    skipped: Vec<Created>,
    failed: Vec<Failure>,
}

enum Column {
    Uid,
    Description,
    Severity,
    AssignedTo,
    ExpressCustomer,
    Metadata,
    MetadataKey(String),
}

fn column(name: &str) -> Option<Column> {
    if let Some(key) = name.strip_prefix("metadata.") {
        return Some(Column::MetadataKey(key.to_owned()));
    }
    let norm: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match norm.as_str() {
        "studyinstanceuid" | "uid" => Column::Uid,
        "studydescription" | "description" => Column::Description,
        "severity" => Column::Severity,
        "assignedto" => Column::AssignedTo,
        "expresscustomerid" | "expresscustomer" => Column::ExpressCustomer,
        "metadata" => Column::Metadata,
        _ => return None,
    })
}

fn read_rows(path: &PathBuf) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .clone();
    let columns: Vec<Column> = headers
        .iter()
        .map(|h| {
            column(h).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: unknown column `{h}` (expected studyInstanceUid, studyDescription, \
                     severity, assignedTo, expressCustomerId, metadata, metadata.KEY)",
                    path.display()
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if !columns.iter().any(|c| matches!(c, Column::Uid)) {
        anyhow::bail!("{}: a studyInstanceUid column is required", path.display());
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed CSV", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut uid = String::new();
        let mut description = None;
        let mut severity = Ok(Severity::Normal);
        let mut study_meta: BTreeMap<String, String> = BTreeMap::new();
        let mut problem: Option<String> = None;
        let (mut assigned_to, mut customer) = (None, None);
        for (col, value) in columns.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            match col {
                Column::Uid => uid = value.to_owned(),
                Column::Description => description = Some(value.to_owned()),
                Column::Severity => severity = value.parse::<Severity>(),
                Column::AssignedTo => assigned_to = Some(value.to_owned()),
                Column::ExpressCustomer => customer = Some(value.to_owned()),
                Column::Metadata => match serde_json::from_str::<BTreeMap<String, String>>(value) {
                    Ok(m) => study_meta.extend(m),
                    Err(e) => {
                        problem = Some(format!("metadata is not a JSON object of strings: {e}"))
                    }
                },
                Column::MetadataKey(k) => {
                    study_meta.insert(k.clone(), value.to_owned());
                }
            }
        }
        let study = match (problem, severity, description) {
            (Some(p), _, _) => Err(p),
            (None, Err(e), _) => Err(format!("severity {e}")),
            _ if uid.is_empty() => Err("studyInstanceUid is empty".into()),
            (None, Ok(_), None) => Err("studyDescription is empty".into()),
            (None, Ok(severity), Some(description)) => Ok(NewStudy {
                study_instance_uid: uid.clone(),
                study_description: description,
                severity,
                assigned_to,
                express_customer_id: customer,
                metadata: (!study_meta.is_empty()).then_some(study_meta),
            }),
        };
        rows.push(Row { line, uid, study });
    }
    Ok(rows)
}

async fn import(client: &Client, remote: &Remote, a: ImportArgs) -> anyhow::Result<()> {
    let rows = read_rows(&a.file)?;
    let mut report = ImportReport {
        rows: rows.len(),
        ..Default::default()
    };
    // Drawn on stderr, and only when it is a terminal.
    let bar = ProgressBar::new(rows.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} studies ({per_sec}) {msg}",
        )
        .expect("valid template"),
    );
    let skip_existing = a.skip_existing;
    let mut outcomes = futures_util::stream::iter(rows)
        .map(|row| async move {
            let outcome = match &row.study {
                Err(problem) => Err((None, problem.clone())),
                Ok(study) => client
                    .create_study(study)
                    .await
                    .map_err(|e| (e.status(), e.to_string())),
            };
            (row, outcome)
        })
        .buffer_unordered(usize::from(a.concurrency));
    while let Some((row, outcome)) = outcomes.next().await {
        match outcome {
            Ok(study) => report.created.push(Created {
                line: row.line,
                study_id: study.study_id,
                study_instance_uid: study.study_instance_uid,
            }),
            Err((Some(409), _)) if skip_existing => {
                // Name the existing study, so the report is complete either way.
                let existing = client.get_study_by_uid(&row.uid).await;
                report.skipped.push(Created {
                    line: row.line,
                    study_id: existing.map(|s| s.study_id).unwrap_or_default(),
                    study_instance_uid: row.uid,
                })
            }
            Err((status, error)) => {
                bar.println(format!("line {}: {}: {error}", row.line, row.uid));
                report.failed.push(Failure {
                    line: row.line,
                    study_instance_uid: row.uid,
                    status,
                    error,
                })
            }
        }
        bar.set_message(format!("{} failed", report.failed.len()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.created.sort_by_key(|c| c.line);
    report.skipped.sort_by_key(|c| c.line);
    report.failed.sort_by_key(|f| f.line);
    if remote.json {
        print_json(&report)?;
    } else {
        if !report.failed.is_empty() {
            let mut t = table(&["LINE", "STUDY INSTANCE UID", "ERROR"]);
            for f in &report.failed {
                t.add_row(vec![
                    f.line.to_string(),
                    f.study_instance_uid.clone(),
                    f.error.clone(),
                ]);
            }
            println!("{t}");
        }
        println!(
            "{} rows: {} created, {} skipped (already there), {} failed",
            report.rows,
            report.created.len(),
            report.skipped.len(),
            report.failed.len()
        );
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} of {} rows failed", report.failed.len(), report.rows);
    }
    Ok(())
}
