//! `lightbox images …`: the Images API from the command line.

use super::{opt, print_json, record_table, Remote};
use anyhow::Context;
use clap::{Args, Subcommand};
use lightbox_client::{
    media_type_for, CoverageAssociation, CoverageImageSide, Image, ImageStatus, NewImage,
    PatientAssociation,
};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: ImagesCommand,
}

#[derive(Subcommand, Debug)]
enum ImagesCommand {
    /// Upload a file: create the image record, send the bytes to its signed
    /// URL, mark it UPLOADED, and show the record.
    Upload(UploadArgs),
    /// Show an image record; with --output, also save its file.
    Get {
        id: String,
        /// Save the image's file here.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct UploadArgs {
    file: PathBuf,
    /// Shown to people (default: the file's name).
    #[arg(long)]
    display_name: Option<String>,
    /// A media type such as image/png (default: from the file's extension).
    #[arg(long)]
    file_type: Option<String>,
    #[arg(long)]
    patient_id: Option<String>,
    #[arg(long, requires = "patient_id")]
    patient_notes: Option<String>,
    /// The insurance coverage (a UUID) the image shows a side of.
    #[arg(long, requires = "side")]
    coverage_id: Option<String>,
    /// FRONT or BACK of the coverage's card.
    #[arg(long, requires = "coverage_id")]
    side: Option<CoverageImageSide>,
}

pub async fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let remote = args.remote;
    let client = remote.images()?;
    match args.command {
        ImagesCommand::Upload(a) => {
            let file_name = a
                .file
                .file_name()
                .and_then(|n| n.to_str())
                .context("the file needs a UTF-8 name")?
                .to_owned();
            let file_type = match a.file_type {
                Some(t) => t,
                None => media_type_for(&file_name)
                    .with_context(|| {
                        format!("cannot tell the type of `{file_name}` from its extension: pass --file-type")
                    })?
                    .to_owned(),
            };
            let bytes = tokio::fs::read(&a.file)
                .await
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let new = NewImage {
                display_name: a.display_name.unwrap_or_else(|| file_name.clone()),
                file_name,
                file_type,
                status: ImageStatus::Pending,
                coverage: a
                    .coverage_id
                    .zip(a.side)
                    .map(|(id, side)| CoverageAssociation { id, side }),
                patient: a.patient_id.map(|id| PatientAssociation {
                    id,
                    notes: a.patient_notes,
                }),
            };
            let created = client.create_image(&new).await?;
            client
                .upload_image_bytes(&created, bytes.into())
                .await
                .with_context(|| {
                    format!(
                        "image {} was created but its file was not stored (it stays PENDING)",
                        created.id
                    )
                })?;
            let done = client
                .update_image(
                    &created.id,
                    created.version,
                    &NewImage {
                        status: ImageStatus::Uploaded,
                        ..created.fields()
                    },
                )
                .await?;
            show(&remote, &done)
        }
        ImagesCommand::Get { id, output } => {
            let image = client.get_image(&id).await?;
            if let Some(path) = output {
                let n = client.download_image_to(&image, &path).await?;
                eprintln!("saved {n} bytes to {}", path.display());
            }
            show(&remote, &image)
        }
    }
}

fn show(remote: &Remote, i: &Image) -> anyhow::Result<()> {
    if remote.json {
        return print_json(i);
    }
    // The signed_url is long and short-lived: --json shows it.
    let t = record_table(vec![
        ("id", i.id.clone()),
        ("file_name", i.file_name.clone()),
        ("display_name", i.display_name.clone()),
        ("file_type", i.file_type.clone()),
        ("status", i.status.to_string()),
        (
            "patient",
            opt(&i.patient.as_ref().map(|p| match &p.notes {
                Some(n) => format!("{} ({n})", p.id),
                None => p.id.clone(),
            })),
        ),
        (
            "coverage",
            opt(&i.coverage.as_ref().map(|c| format!("{} {}", c.id, c.side))),
        ),
        ("version", i.version.to_string()),
        ("deactivated", i.deactivated.to_string()),
        ("updated_at", i.updated_at.to_rfc3339()),
        ("updating_user_id", i.updating_user_id.clone()),
    ]);
    println!("{t}");
    Ok(())
}
