//! Deterministic, realistic-looking studies: the same seed gives the same
//! studies, so Lightbox and Orthanc are loaded with identical data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Needles the benchmark searches for, with how often they occur.
/// `chest` is in roughly one description in six; `arthrogram` in about one in a thousand;
/// `ct` is under three characters, so no trigram index can serve it.
pub const COMMON_NEEDLE: &str = "chest";
pub const RARE_NEEDLE: &str = "arthrogram";
pub const SHORT_NEEDLE: &str = "ct";

pub const CUSTOMERS: usize = 500;

/// Study `i`'s Study Instance UID (i from 0).
pub fn study_uid(i: u64) -> String {
    format!("1.2.826.0.1.3680043.8.498.{}", i + 1)
}

pub fn customer_id(i: usize) -> String {
    format!("cus_bench{i:04}")
}

#[derive(Debug, Clone)]
pub struct GenStudy {
    pub index: u64,
    pub id: String,
    pub uid: String,
    pub description: String,
    pub severity: &'static str,
    pub viewer_status: &'static str,
    pub cancelled_at: Option<i64>,
    /// Index into the organization's assignees.
    pub assignee: Option<usize>,
    pub customer: Option<String>,
    pub created_at: i64,
    pub accession: String,
}

pub struct Generator {
    rng: StdRng,
    total: u64,
    start_ms: i64,
    step_ms: i64,
    assignees: usize,
    next: u64,
}

const MODALITIES: &[(&str, u32)] = &[
    ("CT", 30),
    ("MR", 18),
    ("XR", 30),
    ("US", 12),
    ("NM", 3),
    ("PET/CT", 2),
    ("MG", 5),
];
const BODY_PARTS: &[(&str, u32, bool)] = &[
    // (part, weight, has laterality)
    ("CHEST", 16, false),
    ("ABDOMEN", 8, false),
    ("ABDOMEN AND PELVIS", 8, false),
    ("PELVIS", 3, false),
    ("HEAD", 7, false),
    ("BRAIN", 6, false),
    ("CERVICAL SPINE", 4, false),
    ("THORACIC SPINE", 2, false),
    ("LUMBAR SPINE", 5, false),
    ("KNEE", 6, true),
    ("SHOULDER", 5, true),
    ("HIP", 4, true),
    ("ANKLE", 3, true),
    ("WRIST", 3, true),
    ("HAND", 3, true),
    ("FOOT", 3, true),
    ("ELBOW", 2, true),
    ("NECK SOFT TISSUE", 2, false),
    ("SINUSES", 1, false),
    ("ORBITS", 1, false),
    ("HEART", 2, false),
    ("RENAL", 2, false),
    ("LIVER", 2, false),
    ("THYROID", 2, false),
    ("BREAST", 2, true),
];
const CONTRAST: &[&str] = &["W/O CONTRAST", "WITH CONTRAST", "W/WO CONTRAST"];
const VIEWS: &[&str] = &["1 VIEW", "2 VIEWS", "3 VIEWS", "PORTABLE"];
const SIDES: &[&str] = &["LEFT", "RIGHT", "BILATERAL"];
const REASONS: &[&str] = &[
    "",
    "",
    "",
    "FOLLOW-UP",
    "TRAUMA",
    "R/O FRACTURE",
    "PAIN",
    "PRE-OP",
    "SCREENING",
];

fn weighted<'a, T>(rng: &mut StdRng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut pick = rng.gen_range(0..total);
    for item in items {
        let w = weight(item);
        if pick < w {
            return item;
        }
        pick -= w;
    }
    &items[items.len() - 1]
}

impl Generator {
    /// `total` studies spread over the three years before `now_ms`, oldest first.
    pub fn new(seed: u64, total: u64, assignees: usize, now_ms: i64) -> Generator {
        let span = 3 * 365 * 24 * 3600 * 1000_i64;
        let step_ms = (span / total.max(1) as i64).max(1);
        Generator {
            rng: StdRng::seed_from_u64(seed),
            total,
            start_ms: now_ms - step_ms * total as i64,
            step_ms,
            assignees,
            next: 0,
        }
    }

    fn description(&mut self) -> String {
        let rng = &mut self.rng;
        let (modality, _) = *weighted(rng, MODALITIES, |m| m.1);
        let (part, _, lateral) = *weighted(rng, BODY_PARTS, |p| p.1);
        let mut words = vec![modality.to_owned(), part.to_owned()];
        match modality {
            "CT" | "MR" | "PET/CT" => words.push(CONTRAST[rng.gen_range(0..CONTRAST.len())].into()),
            "XR" => words.push(VIEWS[rng.gen_range(0..VIEWS.len())].into()),
            _ => {}
        }
        if lateral {
            words.push(SIDES[rng.gen_range(0..SIDES.len())].into());
        }
        // About one in a thousand is an arthrogram.
        if rng.gen_range(0..1000) == 0 {
            words.push("ARTHROGRAM".into());
        }
        let reason = REASONS[rng.gen_range(0..REASONS.len())];
        if !reason.is_empty() {
            words.push(format!("- {reason}"));
        }
        words.join(" ")
    }
}

impl Iterator for Generator {
    type Item = GenStudy;

    fn next(&mut self) -> Option<GenStudy> {
        if self.next >= self.total {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let created_at =
            self.start_ms + self.step_ms * index as i64 + self.rng.gen_range(0..self.step_ms);
        let uuid = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (created_at / 1000) as u64,
            ((created_at % 1000) * 1_000_000) as u32,
        ));
        // The v7 random bits come from uuid's own RNG; replace them with ours so runs repeat.
        let mut bytes = *uuid.as_bytes();
        let random: [u8; 10] = self.rng.gen();
        bytes[6] = 0x70 | (random[0] & 0x0f);
        bytes[7] = random[1];
        bytes[8] = 0x80 | (random[2] & 0x3f);
        bytes[9..16].copy_from_slice(&random[3..10]);
        let id = format!("stu_{}", uuid::Uuid::from_bytes(bytes).simple());
        let description = self.description();
        let rng = &mut self.rng;
        let severity = match rng.gen_range(0..100) {
            0..=2 => "stat",
            3..=14 => "high",
            _ => "normal",
        };
        // Recent studies are mostly still being read.
        let recent = index * 100 >= self.total * 97;
        let viewer_status = if (recent && rng.gen_range(0..10) < 8) || rng.gen_range(0..100) < 8 {
            "incomplete"
        } else {
            "complete"
        };
        let cancelled_at =
            (rng.gen_range(0..100) < 2).then(|| created_at + rng.gen_range(60_000..86_400_000));
        let assignee = (self.assignees > 0 && rng.gen_range(0..100) < 75)
            .then(|| rng.gen_range(0..self.assignees));
        let customer =
            (rng.gen_range(0..100) < 10).then(|| customer_id(rng.gen_range(0..CUSTOMERS)));
        let accession = format!("A{:09}", index + 1);
        Some(GenStudy {
            index,
            id,
            uid: study_uid(index),
            description,
            severity,
            viewer_status,
            cancelled_at,
            assignee,
            customer,
            created_at,
            accession,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_studies_in_id_order() {
        let a: Vec<_> = Generator::new(7, 2000, 40, 1_700_000_000_000).collect();
        let b: Vec<_> = Generator::new(7, 2000, 40, 1_700_000_000_000).collect();
        assert_eq!(a.len(), 2000);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.id, &x.description, x.created_at),
                (&y.id, &y.description, y.created_at)
            );
        }
        // Oldest first, so ids (UUIDv7) rise with creation time.
        assert!(a
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at && w[0].id < w[1].id));
        assert!(a.iter().any(|s| s.description.contains("CHEST")));
    }
}
