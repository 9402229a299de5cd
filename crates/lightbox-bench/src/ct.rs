//! The DICOM ingest scenario's data: N CT Image Storage instances (square
//! matrix, 16-bit, MONOCHROME2, Explicit VR Little Endian Part 10 files) in
//! studies of two series of 50 slices, written with dicom-rs and cached in the
//! data directory. The same seed gives the same files, so Lightbox and Orthanc
//! receive identical bytes. Files go to four folders of consecutive instances
//! (`q0`..`q3`), one per parallel association.

use anyhow::Context;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Slices per series and series per study: a two-series CT (e.g. soft tissue
/// and lung kernels), shorter than a real one so that a few hundred instances
/// still make several studies.
pub const SLICES_PER_SERIES: u64 = 50;
pub const SERIES_PER_STUDY: u64 = 2;
/// The parallel associations, each sending one folder of the set.
pub const QUARTERS: u64 = 4;

/// Bumped when the files change, so a cached set of an older layout is rewritten.
const GENERATOR_VERSION: u32 = 2;

/// Which set: how many instances of which matrix (rows = columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtSet {
    pub instances: u64,
    pub matrix: u16,
}

/// A written set, as recorded next to its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub set: CtSet,
    pub version: u32,
    /// Every file's size added up (what storescu reads; the data sets sent
    /// are each ~330 bytes shorter: no preamble and file meta).
    pub bytes: u64,
    pub studies: u64,
    pub series: u64,
}

impl CtSet {
    pub fn studies(&self) -> u64 {
        self.series().div_ceil(SERIES_PER_STUDY)
    }

    pub fn series(&self) -> u64 {
        self.instances.div_ceil(SLICES_PER_SERIES)
    }

    /// The folder, under the data directory, holding this set.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("dicom-files").join(format!(
            "ct-{}x{}-{}",
            self.matrix, self.matrix, self.instances
        ))
    }

    /// The folder instance `i` is written to: quarters of consecutive instances.
    pub fn quarter(&self, i: u64) -> u64 {
        i * QUARTERS / self.instances.max(1)
    }
}

/// Study, series and SOP Instance UIDs under `2.25` (a UUID-derived root needs no
/// registration), the same for the same set and index.
fn uid(set: &CtSet, kind: u64, index: u64) -> String {
    let seed = crate::seed::SEED ^ (u64::from(set.matrix) << 32) ^ (set.instances << 40);
    let hi = splitmix(seed ^ kind.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let lo = splitmix(hi ^ index);
    // The 128-bit integer as decimal: at most 39 digits, 44 characters in all.
    format!("2.25.{}", (u128::from(hi) << 64) | u128::from(lo))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Pixels of slice `i`: a water disc (CT number 0, stored +1024) with noise in air.
/// Noise everywhere, so no two instances share their pixel bytes.
fn pixels(matrix: u16, i: u64) -> Vec<u8> {
    let n = usize::from(matrix);
    let mut out = Vec::with_capacity(n * n * 2);
    let centre = n as i64 / 2;
    let r2 = (n as i64 * 45 / 100).pow(2);
    let mut state = splitmix(i ^ 0x5eed);
    for y in 0..n as i64 {
        for x in 0..n as i64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state & 0x3f) as u16;
            let (dx, dy) = (x - centre, y - centre);
            let value = if dx * dx + dy * dy < r2 { 1024 } else { 24 } + noise;
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

/// Instance `i` of `set` (0-based), as a Part 10 object.
pub fn instance(set: &CtSet, i: u64) -> anyhow::Result<FileDicomObject<InMemDicomObject>> {
    instance_in_series_of(set, i, SLICES_PER_SERIES)
}

/// Instance `i` of `set` in series of `slices` slices (two series a study):
/// the `dicomweb` benchmark stores one series of 500.
pub fn instance_in_series_of(
    set: &CtSet,
    i: u64,
    slices: u64,
) -> anyhow::Result<FileDicomObject<InMemDicomObject>> {
    let series = i / slices;
    let study = series / SERIES_PER_STUDY;
    let slice = i % slices;
    let study_uid = uid(set, 1, study);
    let series_uid = uid(set, 2, series);
    let sop_uid = uid(set, 3, i);
    let frame_uid = uid(set, 4, study);
    // Slices 1.25 mm apart, from 0 down (`0.0 -`: the first is 0.00, not -0.00).
    let z = format!("{:.2}", 0.0 - slice as f64 * 1.25);
    let m = set.matrix;
    let spacing = format!("{:.4}", 350.0 / f64::from(m));
    let corner = format!("{:.2}", -175.0);
    let strings: Vec<(Tag, VR, String)> = vec![
        (tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100".into()),
        (tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL".into()),
        (tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE.into()),
        (tags::SOP_INSTANCE_UID, VR::UI, sop_uid),
        (tags::STUDY_DATE, VR::DA, "20261203".into()),
        (
            tags::STUDY_TIME,
            VR::TM,
            format!("{:06}", 70000 + study % 100),
        ),
        (tags::ACCESSION_NUMBER, VR::SH, format!("BENCH{study:06}")),
        (tags::MODALITY, VR::CS, "CT".into()),
        (tags::MANUFACTURER, VR::LO, "Lightbox bench".into()),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, String::new()),
        (
            tags::STUDY_DESCRIPTION,
            VR::LO,
            "CT CHEST W/O CONTRAST - INGEST BENCH".into(),
        ),
        (
            tags::SERIES_DESCRIPTION,
            VR::LO,
            format!("AXIAL 1.25 KERNEL {}", series % SERIES_PER_STUDY + 1),
        ),
        (
            tags::PATIENT_NAME,
            VR::PN,
            format!("BENCH^PATIENT{study:04}"),
        ),
        (tags::PATIENT_ID, VR::LO, format!("PB{study:06}")),
        (tags::PATIENT_BIRTH_DATE, VR::DA, "19700101".into()),
        (tags::PATIENT_SEX, VR::CS, "O".into()),
        (tags::SLICE_THICKNESS, VR::DS, "1.25".into()),
        (tags::KVP, VR::DS, "120".into()),
        (tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
        (tags::SERIES_INSTANCE_UID, VR::UI, series_uid),
        (tags::STUDY_ID, VR::SH, format!("{}", study + 1)),
        (
            tags::SERIES_NUMBER,
            VR::IS,
            format!("{}", series % SERIES_PER_STUDY + 1),
        ),
        (tags::INSTANCE_NUMBER, VR::IS, format!("{}", slice + 1)),
        (
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            format!("{corner}\\{corner}\\{z}"),
        ),
        (
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            "1\\0\\0\\0\\1\\0".into(),
        ),
        (tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_uid),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO, String::new()),
        (tags::SLICE_LOCATION, VR::DS, z.clone()),
        (
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        ),
        (tags::PIXEL_SPACING, VR::DS, format!("{spacing}\\{spacing}")),
        (tags::WINDOW_CENTER, VR::DS, "40".into()),
        (tags::WINDOW_WIDTH, VR::DS, "400".into()),
        (tags::RESCALE_INTERCEPT, VR::DS, "-1024".into()),
        (tags::RESCALE_SLOPE, VR::DS, "1".into()),
    ];
    let mut obj = InMemDicomObject::new_empty();
    for (tag, vr, value) in strings {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    for (tag, value) in [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, m),
        (tags::COLUMNS, m),
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 16),
        (tags::HIGH_BIT, 15),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(pixels(m, i)),
    ));
    Ok(obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid("2.25.20261203.1")
            .implementation_version_name("LIGHTBOX_BENCH"),
    )?)
}

/// The set's files, written unless the data directory already holds them.
pub fn ensure(set: &CtSet, data_dir: &Path) -> anyhow::Result<Written> {
    anyhow::ensure!(
        set.instances >= QUARTERS,
        "at least {QUARTERS} instances (one per parallel association)"
    );
    let dir = set.dir(data_dir);
    let record = dir.join("written.json");
    if let Some(written) = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Written>(&b).ok())
        .filter(|w| w.set == *set && w.version == GENERATOR_VERSION)
    {
        eprintln!(
            "reusing the {} CT instances in {}",
            set.instances,
            dir.display()
        );
        return Ok(written);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    for q in 0..QUARTERS {
        std::fs::create_dir_all(dir.join(format!("q{q}")))?;
    }
    let bar = crate::seed::bar(set.instances, "writing CT instances");
    let mut bytes = 0;
    for i in 0..set.instances {
        let path = dir.join(format!("q{}/ct{i:06}.dcm", set.quarter(i)));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        instance(set, i)?
            .write_all(&mut out)
            .with_context(|| format!("write {}", path.display()))?;
        // On disk now, so their writeback does not compete with the disk
        // probe and the first pass.
        let file = out.into_inner()?;
        file.sync_all()?;
        bytes += file.metadata()?.len();
        bar.inc(1);
    }
    bar.finish_and_clear();
    let written = Written {
        set: *set,
        version: GENERATOR_VERSION,
        bytes,
        studies: set.studies(),
        series: set.series(),
    };
    std::fs::write(&record, serde_json::to_vec_pretty(&written)?)?;
    eprintln!(
        "wrote {} CT instances ({:.0} MB) in {}",
        set.instances,
        bytes as f64 / 1e6,
        dir.display()
    );
    Ok(written)
}

/// Reads every file of the set once, so a pass sends from the page cache (this
/// VM reclaims cold pages) and measures the receiver, not the sender's disk.
pub fn warm(set: &CtSet, data_dir: &Path) -> anyhow::Result<()> {
    for q in 0..QUARTERS {
        for entry in std::fs::read_dir(set.dir(data_dir).join(format!("q{q}")))? {
            std::io::copy(
                &mut std::fs::File::open(entry?.path())?,
                &mut std::io::sink(),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: CtSet = CtSet {
        instances: 120,
        matrix: 64,
    };

    #[test]
    fn an_instance_is_a_parseable_ct_of_the_right_size() {
        let set = CtSet {
            instances: 8,
            matrix: 512,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ct.dcm");
        instance(&set, 3).unwrap().write_to_file(&path).unwrap();

        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[128..132], b"DICM");
        // 512 x 512 x 2 bytes of pixels, and a header of a few hundred bytes.
        let pixel_bytes = 512 * 512 * 2;
        assert!(
            (pixel_bytes..pixel_bytes + 2048).contains(&file.len()),
            "{} bytes",
            file.len()
        );

        let obj = dicom_object::open_file(&path).unwrap();
        assert_eq!(
            obj.meta().transfer_syntax(),
            uids::EXPLICIT_VR_LITTLE_ENDIAN
        );
        assert_eq!(
            obj.meta().media_storage_sop_class_uid(),
            uids::CT_IMAGE_STORAGE
        );
        let text = |tag| obj.element(tag).unwrap().to_str().unwrap().into_owned();
        let number = |tag| obj.element(tag).unwrap().to_int::<u32>().unwrap();
        assert_eq!(text(tags::MODALITY), "CT");
        assert_eq!(text(tags::PHOTOMETRIC_INTERPRETATION), "MONOCHROME2");
        assert_eq!(text(tags::INSTANCE_NUMBER), "4");
        assert_eq!(text(tags::SLICE_LOCATION), "-3.75");
        assert_eq!((number(tags::ROWS), number(tags::COLUMNS)), (512, 512));
        assert_eq!(
            (number(tags::BITS_ALLOCATED), number(tags::BITS_STORED)),
            (16, 16)
        );
        assert_eq!(
            obj.element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .len(),
            pixel_bytes
        );
        for tag in [
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::SOP_INSTANCE_UID,
        ] {
            let uid = text(tag);
            assert!(uid.len() <= 64, "{uid}");
            assert!(
                uid.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "{uid}"
            );
            assert!(
                !uid.split('.')
                    .any(|c| c.is_empty() || (c.len() > 1 && c.starts_with('0'))),
                "{uid}"
            );
        }
        assert_eq!(
            obj.meta().media_storage_sop_instance_uid(),
            text(tags::SOP_INSTANCE_UID)
        );
    }

    #[test]
    fn a_set_is_several_studies_of_two_series_with_unique_instances() {
        let uids_of = |i| {
            let obj = instance(&SMALL, i).unwrap();
            let text = |tag| obj.element(tag).unwrap().to_str().unwrap().into_owned();
            (
                text(tags::STUDY_INSTANCE_UID),
                text(tags::SERIES_INSTANCE_UID),
                text(tags::SOP_INSTANCE_UID),
            )
        };
        let all: Vec<_> = (0..SMALL.instances).map(uids_of).collect();
        let count = |f: fn(&(String, String, String)) -> &String| {
            all.iter()
                .map(f)
                .collect::<std::collections::HashSet<_>>()
                .len() as u64
        };
        // 120 slices: series of 50, 50 and 20; studies of two series.
        assert_eq!(count(|u| &u.0), SMALL.studies());
        assert_eq!((SMALL.studies(), SMALL.series()), (2, 3));
        assert_eq!(count(|u| &u.1), 3);
        assert_eq!(count(|u| &u.2), 120);
        assert_eq!(uids_of(7), all[7], "the same set gives the same UIDs");
        let other = CtSet {
            matrix: 128,
            ..SMALL
        };
        assert_ne!(
            instance(&other, 7)
                .unwrap()
                .meta()
                .media_storage_sop_instance_uid(),
            all[7].2
        );
    }

    #[test]
    fn quarters_split_the_instances_evenly_and_in_order() {
        let sizes: Vec<usize> = (0..QUARTERS)
            .map(|q| {
                (0..SMALL.instances)
                    .filter(|&i| SMALL.quarter(i) == q)
                    .count()
            })
            .collect();
        assert_eq!(sizes, [30, 30, 30, 30]);
        assert!((1..SMALL.instances).all(|i| SMALL.quarter(i) >= SMALL.quarter(i - 1)));
    }

    #[test]
    fn a_written_set_is_reused_and_counts_its_bytes() {
        let data = tempfile::tempdir().unwrap();
        let set = CtSet {
            instances: 6,
            matrix: 32,
        };
        let written = ensure(&set, data.path()).unwrap();
        let files: Vec<_> = (0..QUARTERS)
            .flat_map(|q| std::fs::read_dir(set.dir(data.path()).join(format!("q{q}"))).unwrap())
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        assert_eq!(files.len(), 6);
        assert_eq!(files.iter().sum::<u64>(), written.bytes);
        assert_eq!(ensure(&set, data.path()).unwrap(), written);
    }
}
