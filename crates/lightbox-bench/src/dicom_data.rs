//! The DICOM index rows of the `dicomweb` benchmark: for every worklist study
//! the generator of `data.rs` makes, its patient (a realistic name from a
//! Zipf-weighted list, birth date, sex; ~2.5 studies per patient), StudyDate
//! over ten years, accession number and modalities, its series (1–8, by
//! modality) and their instance counts; and, for the instances that get rows,
//! a CT slice's header as DICOM JSON (~3.5 KB, like a real one). Pure and
//! deterministic: the same study index gives the same rows, so Orthanc and
//! both databases hold the same archive.

use crate::data::GenStudy;
use serde_json::{json, Map, Value};

/// PatientName needles: `zwieb` belongs to a handful of patients (one in
/// 40,000: ~25 studies at a million), `smith` to ~1 % of them.
pub const RARE_NAME: &str = "zwieb";
pub const COMMON_NAME: &str = "smith";
/// One patient in this many is a Zwieback.
const RARE_EVERY: u64 = 40_000;
/// Studies per patient, on average.
pub const STUDIES_PER_PATIENT: f64 = 2.5;
/// Ten years of StudyDates, the newest study today.
pub const YEARS: i64 = 10;
const DAY_MS: i64 = 86_400_000;

/// US-census-like surnames with Zipf weights (SMITH ~1 % of names, as in the
/// US), and a syllable tail for the rest, so substrings have rare and common
/// matches like a real patient list.
const SURNAMES: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "WALKER",
    "YOUNG",
    "ALLEN",
    "KING",
    "WRIGHT",
    "SCOTT",
    "TORRES",
    "NGUYEN",
    "HILL",
    "FLORES",
    "GREEN",
    "ADAMS",
    "NELSON",
    "BAKER",
    "HALL",
    "RIVERA",
    "CAMPBELL",
    "MITCHELL",
    "CARTER",
    "ROBERTS",
    "MUELLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "MEYER",
    "WAGNER",
    "BECKER",
    "SCHULZ",
    "HOFFMANN",
    "KOCH",
    "RICHTER",
    "KLEIN",
    "WOLF",
    "NEUMANN",
    "SCHWARZ",
    "ZIMMERMANN",
    "BRAUN",
    "KRUEGER",
    "HOFMANN",
    "HARTMANN",
    "LANGE",
    "SCHMITT",
    "WERNER",
    "KRAUSE",
    "MEIER",
    "LEHMANN",
    "SCHMID",
    "SCHULZE",
    "MAIER",
    "KOEHLER",
    "HERRMANN",
    "KOENIG",
    "WALTER",
    "MAYER",
    "HUBER",
    "KAISER",
    "FUCHS",
    "PETERS",
    "LANG",
    "SCHOLZ",
    "MOELLER",
    "WEISS",
    "JUNG",
    "HAHN",
    "SCHUBERT",
    "VOGEL",
    "FRIEDRICH",
    "KELLER",
    "GUENTHER",
    "FRANK",
    "BERGER",
    "WINKLER",
    "ROTH",
    "BECK",
    "LORENZ",
    "BAUMANN",
    "FRANKE",
    "ALBRECHT",
    "SCHUSTER",
    "SIMON",
    "LUDWIG",
    "BOEHM",
    "WINTER",
    "KRAUS",
    "MARTIN",
    "SCHUMACHER",
    "KRAEMER",
    "VOGT",
    "STEIN",
    "JAEGER",
    "OTTO",
    "SOMMER",
    "GROSS",
    "SEIDEL",
    "HEINRICH",
    "BRANDT",
    "HAAS",
    "SCHREIBER",
    "GRAF",
    "SCHULTE",
    "DIETRICH",
    "ZIEGLER",
    "KUHN",
    "KUEHN",
    "POHL",
    "ENGEL",
    "HORN",
    "BUSCH",
    "BERGMANN",
    "THOMAS",
    "VOIGT",
    "SAUER",
    "ARNOLD",
    "WOLFF",
    "PFEIFFER",
    "OKAFOR",
    "NAKAMURA",
    "TANAKA",
    "SUZUKI",
    "WATANABE",
    "KIM",
    "PARK",
    "CHEN",
    "WANG",
    "LI",
    "ZHANG",
    "LIU",
    "PATEL",
    "SHAH",
    "SINGH",
    "KUMAR",
    "KHAN",
    "ALI",
    "HUSSAIN",
    "IVANOV",
    "PETROV",
    "NOVAK",
    "KOWALSKI",
    "NOWAK",
    "DUBOIS",
    "MOREAU",
    "LAURENT",
    "LEFEBVRE",
    "ROSSI",
    "RUSSO",
    "FERRARI",
    "ESPOSITO",
    "BIANCHI",
    "ROMANO",
    "SILVA",
    "SANTOS",
    "OLIVEIRA",
    "PEREIRA",
    "COSTA",
    "MURPHY",
    "KELLY",
    "OBRIEN",
    "RYAN",
];
const SYLLABLES: &[&str] = &[
    "BA", "BER", "CA", "DAN", "DO", "EL", "FA", "GAR", "HA", "IN", "JA", "KA", "LA", "LEN", "MA",
    "MER", "NA", "NO", "OR", "PA", "RA", "RI", "SA", "SEN", "TA", "TER", "TO", "VA", "VER", "WA",
    "YA", "BRO", "CHI", "DRE", "FLO", "GRA", "KRI", "MON", "PRA", "STA", "TRE",
];
const GIVEN: &[(&str, char)] = &[
    ("JAMES", 'M'),
    ("MARY", 'F'),
    ("ROBERT", 'M'),
    ("PATRICIA", 'F'),
    ("JOHN", 'M'),
    ("JENNIFER", 'F'),
    ("MICHAEL", 'M'),
    ("LINDA", 'F'),
    ("DAVID", 'M'),
    ("ELIZABETH", 'F'),
    ("WILLIAM", 'M'),
    ("BARBARA", 'F'),
    ("RICHARD", 'M'),
    ("SUSAN", 'F'),
    ("JOSEPH", 'M'),
    ("JESSICA", 'F'),
    ("THOMAS", 'M'),
    ("SARAH", 'F'),
    ("CHARLES", 'M'),
    ("KAREN", 'F'),
    ("MARIA", 'F'),
    ("JOSE", 'M'),
    ("ANNA", 'F'),
    ("PETER", 'M'),
    ("HANS", 'M'),
    ("URSULA", 'F'),
    ("WEI", 'M'),
    ("MEI", 'F'),
    ("HIROSHI", 'M'),
    ("YUKI", 'F'),
    ("AMIR", 'M'),
    ("FATIMA", 'F'),
    ("OLGA", 'F'),
    ("IVAN", 'M'),
    ("SOFIA", 'F'),
    ("LUCAS", 'M'),
    ("EMMA", 'F'),
    ("NOAH", 'M'),
];

pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic stream of random numbers for one study or patient.
struct Draw(u64);

impl Draw {
    fn new(kind: u64, index: u64) -> Draw {
        Draw(splitmix(kind.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ index))
    }
    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }
    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub birth_date: String,
    pub sex: &'static str,
}

/// Patient `p`: the same for every study of theirs.
pub fn patient(p: u64) -> Patient {
    let mut d = Draw::new(1, p);
    let surname = if p % RARE_EVERY == 17 {
        "ZWIEBACK".to_owned()
    } else if d.below(100) < 85 {
        // Zipf over the list: rank r has weight 1/(r+1); the first (SMITH)
        // gets ~1 % of all names after the tail's share.
        let n = SURNAMES.len() as f64;
        let harmonic = (n + 0.5).ln() + 0.5772;
        let u = d.next() as f64 / u64::MAX as f64;
        let rank = ((u * harmonic).exp() - 0.5).floor().clamp(0.0, n - 1.0) as usize;
        // Flatten the head a little: rank 0 is ~1/harmonic ≈ 17 % otherwise.
        if rank == 0 && d.below(100) >= 7 {
            SURNAMES[1 + d.below(SURNAMES.len() as u64 - 1) as usize].to_owned()
        } else {
            SURNAMES[rank].to_owned()
        }
    } else {
        let n = d.range(2, 3);
        (0..n)
            .map(|_| SYLLABLES[d.below(SYLLABLES.len() as u64) as usize])
            .collect::<String>()
    };
    let (given, sex) = GIVEN[d.below(GIVEN.len() as u64) as usize];
    let middle = (d.below(3) == 0).then(|| (b'A' + d.below(26) as u8) as char);
    let name = match middle {
        Some(m) => format!("{surname}^{given}^{m}"),
        None => format!("{surname}^{given}"),
    };
    let sex = match d.below(200) {
        0 => "O",
        _ if sex == 'M' => "M",
        _ => "F",
    };
    let year = 1930 + d.below(90);
    let birth_date = format!("{year:04}{:02}{:02}", d.range(1, 12), d.range(1, 28));
    Patient {
        id: format!("MRN{:08}", splitmix(p ^ 0xfeed) % 100_000_000),
        name,
        birth_date,
        sex,
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub uid: String,
    pub number: i64,
    pub modality: &'static str,
    pub description: String,
    pub instances: i64,
}

#[derive(Debug, Clone)]
pub struct DicomStudy {
    pub uid: String,
    pub patient: Patient,
    pub study_date: String,
    pub study_time: String,
    pub accession: String,
    pub description: String,
    pub referring: String,
    pub study_id: String,
    /// Sorted distinct modalities, `\`-joined (as ingest writes them).
    pub modalities: String,
    pub series: Vec<Series>,
    pub instances: i64,
    pub created_at: i64,
    /// The study's patient/study-level DICOM JSON (`attributes`).
    pub attributes: String,
}

/// Civil date (YYYYMMDD) and time of Unix milliseconds, UTC.
pub fn da_tm(ms: i64) -> (String, String) {
    crate::orthanc::da_tm(ms)
}

/// The first StudyDate of the range the benchmark's searches use: the last
/// year of the archive.
pub fn last_year_range(now_ms: i64) -> String {
    let (from, _) = da_tm(now_ms - 365 * DAY_MS);
    let (to, _) = da_tm(now_ms);
    format!("{from}-{to}")
}

/// The series of a study of `modality` (as the worklist description names it).
fn series_for(modality: &str, d: &mut Draw) -> Vec<(&'static str, String, i64)> {
    let mut out = Vec::new();
    match modality {
        "CT" => {
            for k in 0..d.range(2, 5) {
                let desc = [
                    "SCOUT",
                    "AXIAL 5.0 SOFT",
                    "AXIAL 1.25 LUNG",
                    "CORONAL MPR",
                    "SAGITTAL MPR",
                ][k as usize];
                let n = if k == 0 {
                    d.range(1, 3)
                } else {
                    d.range(60, 400)
                } as i64;
                out.push(("CT", desc.to_owned(), n));
            }
            if d.below(100) < 30 {
                out.push(("SR", "DOSE REPORT".to_owned(), 1));
            }
        }
        "MR" => {
            for k in 0..d.range(3, 6) {
                let desc = [
                    "LOCALIZER",
                    "T1 SAG",
                    "T2 AX",
                    "FLAIR AX",
                    "DWI",
                    "T1 POST AX",
                ][k as usize];
                out.push(("MR", desc.to_owned(), d.range(20, 200) as i64));
            }
        }
        "XR" => {
            let m = if d.below(2) == 0 { "CR" } else { "DX" };
            for k in 0..d.range(1, 3) {
                out.push((m, format!("VIEW {}", k + 1), 1));
            }
        }
        "US" => {
            for k in 0..d.range(1, 2) {
                out.push(("US", format!("US {}", k + 1), d.range(1, 30) as i64));
            }
        }
        "NM" => {
            for k in 0..d.range(1, 2) {
                out.push(("NM", format!("NM {}", k + 1), d.range(1, 4) as i64));
            }
        }
        "PET/CT" => {
            out.push(("CT", "CT AC".to_owned(), d.range(200, 400) as i64));
            out.push(("PT", "PET AC".to_owned(), d.range(200, 400) as i64));
            out.push(("PT", "PET NAC".to_owned(), d.range(200, 400) as i64));
        }
        _ => {
            for view in ["R CC", "L CC", "R MLO", "L MLO"] {
                out.push(("MG", view.to_owned(), 1));
            }
        }
    }
    out
}

/// A UID under `2.25` for (kind, index): study 1, series 2, instance 3.
pub fn uid(kind: u64, index: u64) -> String {
    let hi = splitmix(0xd1c0_u64 ^ kind.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let lo = splitmix(hi ^ index);
    format!("2.25.{}", (u128::from(hi >> 8) << 64) | u128::from(lo))
}

/// The DICOM study for worklist study `s` of `total`, archived `now_ms`-relative:
/// created times spread evenly over [`YEARS`] years (oldest first, as the
/// worklist's), StudyDate a day or two before, and one study in twelve an
/// imported prior dated anywhere in the years before.
pub fn study(s: &GenStudy, total: u64, now_ms: i64) -> DicomStudy {
    let mut d = Draw::new(2, s.index);
    let span = YEARS * 365 * DAY_MS;
    let start = now_ms - span;
    let created_at = start + (span as f64 * (s.index as f64 + 0.5) / total.max(1) as f64) as i64;
    let study_ms = if d.below(12) == 0 {
        start + d.below((created_at - start).max(1) as u64) as i64
    } else {
        created_at - d.below(2 * DAY_MS as u64) as i64
    };
    let (study_date, _) = da_tm(study_ms);
    let study_time = format!("{:02}{:02}{:02}", d.range(7, 19), d.below(60), d.below(60));
    let patients = ((total as f64 / STUDIES_PER_PATIENT) as u64).max(1);
    let patient = patient(splitmix(s.index ^ 0xabcd) % patients);
    let modality = s.description.split(' ').next().unwrap_or("OT");
    let series: Vec<Series> = series_for(modality, &mut d)
        .into_iter()
        .enumerate()
        .map(|(k, (m, desc, n))| Series {
            uid: uid(2, s.index * 16 + k as u64),
            number: k as i64 + 1,
            modality: m,
            description: desc,
            instances: n,
        })
        .collect();
    let mut modalities: Vec<&str> = series.iter().map(|x| x.modality).collect();
    modalities.sort();
    modalities.dedup();
    let instances = series.iter().map(|x| x.instances).sum();
    let referring = format!(
        "{}^{}",
        SURNAMES[d.below(SURNAMES.len() as u64) as usize],
        GIVEN[d.below(GIVEN.len() as u64) as usize].0
    );
    let study_id = format!("{}", s.index % 100_000 + 1);
    let uid = crate::data::study_uid(s.index);
    let attributes = json!({
        "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
        "00080020": {"vr": "DA", "Value": [study_date]},
        "00080030": {"vr": "TM", "Value": [study_time]},
        "00080050": {"vr": "SH", "Value": [s.accession]},
        "00080080": {"vr": "LO", "Value": ["LIGHTBOX BENCH MEDICAL CENTER"]},
        "00080090": {"vr": "PN", "Value": [{"Alphabetic": referring}]},
        "00081030": {"vr": "LO", "Value": [s.description]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": patient.name}]},
        "00100020": {"vr": "LO", "Value": [patient.id]},
        "00100030": {"vr": "DA", "Value": [patient.birth_date]},
        "00100040": {"vr": "CS", "Value": [patient.sex]},
        "0020000D": {"vr": "UI", "Value": [uid]},
        "00200010": {"vr": "SH", "Value": [study_id]},
    })
    .to_string();
    DicomStudy {
        uid,
        patient,
        study_date,
        study_time,
        accession: s.accession.clone(),
        description: s.description.clone(),
        referring,
        study_id,
        modalities: modalities.join("\\"),
        series,
        instances,
        created_at,
        attributes,
    }
}

/// A series' attributes (`dicom_series.attributes`).
pub fn series_attributes(st: &DicomStudy, se: &Series) -> String {
    json!({
        "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
        "00080021": {"vr": "DA", "Value": [st.study_date]},
        "00080031": {"vr": "TM", "Value": [st.study_time]},
        "00080060": {"vr": "CS", "Value": [se.modality]},
        "00080070": {"vr": "LO", "Value": ["LIGHTBOX BENCH"]},
        "00081010": {"vr": "SH", "Value": ["BENCH01"]},
        "0008103E": {"vr": "LO", "Value": [se.description]},
        "0020000E": {"vr": "UI", "Value": [se.uid]},
        "00200011": {"vr": "IS", "Value": [se.number]},
    })
    .to_string()
}

/// Instance `n` (1-based) of a series: a 512×512 CT slice's header as DICOM
/// JSON, with the elements a scanner writes (acquisition, reconstruction,
/// dose, a private block) and the Pixel Data left out, as ingest stores it:
/// ~3.5 KB.
pub fn instance_metadata(st: &DicomStudy, se: &Series, sop: &str, n: i64) -> String {
    let z = format!("{:.2}", -(n as f64) * 1.25);
    let mut m: Map<String, Value> = serde_json::from_str(&st.attributes).expect("our JSON");
    let series: Map<String, Value> =
        serde_json::from_str(&series_attributes(st, se)).expect("our JSON");
    m.extend(series);
    let mut put = |tag: &str, vr: &str, value: Value| {
        m.insert(tag.to_owned(), json!({"vr": vr, "Value": value}));
    };
    put("00080008", "CS", json!(["ORIGINAL", "PRIMARY", "AXIAL"]));
    put("00080016", "UI", json!(["1.2.840.10008.5.1.4.1.1.2"]));
    put("00080018", "UI", json!([sop]));
    put("00080022", "DA", json!([st.study_date]));
    put("00080023", "DA", json!([st.study_date]));
    put("00080032", "TM", json!([st.study_time]));
    put("00080033", "TM", json!([st.study_time]));
    put("00081040", "LO", json!(["RADIOLOGY"]));
    put("00081050", "PN", json!([{"Alphabetic": "READER^BENCH"}]));
    put("00081070", "PN", json!([{"Alphabetic": "TECH^BENCH"}]));
    put("00081090", "LO", json!(["Bench Scanner 128"]));
    put(
        "00081111",
        "SQ",
        json!([{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.3.1.2.3.3"]},
                "00081155": {"vr": "UI", "Value": [format!("{}.9", st.uid)]}}]),
    );
    put("00101010", "AS", json!(["054Y"]));
    put("00101020", "DS", json!([1.78]));
    put("00101030", "DS", json!([82]));
    put("00180010", "LO", json!(["OMNIPAQUE 350"]));
    put("00180015", "CS", json!(["CHEST"]));
    put("00180022", "CS", json!(["HELICAL MODE"]));
    put("00180050", "DS", json!([1.25]));
    put("00180060", "DS", json!([120]));
    put("00180088", "DS", json!([1.25]));
    put("00180090", "DS", json!([500]));
    put("00181020", "LO", json!(["BENCH 4.2.1", "RECON 2.0"]));
    put(
        "00181030",
        "LO",
        json!(["CHEST ABD PELVIS W CONTRAST 1.25"]),
    );
    put("00181100", "DS", json!([350]));
    put("00181110", "DS", json!([949.075]));
    put("00181111", "DS", json!([541]));
    put("00181120", "DS", json!([0]));
    put("00181130", "DS", json!([153.5]));
    put("00181140", "CS", json!(["CW"]));
    put("00181150", "IS", json!([500]));
    put("00181151", "IS", json!([285]));
    put("00181152", "IS", json!([6]));
    put("00181160", "SH", json!(["BODY FILTER"]));
    put("00181170", "IS", json!([72]));
    put("00181190", "DS", json!([0.7, 1.2]));
    put("00181210", "SH", json!(["STANDARD"]));
    put("00185100", "CS", json!(["FFS"]));
    put("00189305", "FD", json!([0.5]));
    put("00189306", "FD", json!([0.625]));
    put("00189307", "FD", json!([40.0]));
    put("00189309", "FD", json!([39.375]));
    put("00189310", "FD", json!([0.984375]));
    put("00189311", "FD", json!([0.984375]));
    put("00189345", "FD", json!([12.34]));
    put("00200012", "IS", json!([1]));
    put("00200013", "IS", json!([n]));
    put(
        "00200032",
        "DS",
        json!([-175.0, -175.0, z.parse::<f64>().unwrap_or(0.0)]),
    );
    put("00200037", "DS", json!([1, 0, 0, 0, 1, 0]));
    put("00200052", "UI", json!([format!("{}.7", st.uid)]));
    put("00201040", "LO", json!([""]));
    put("00201041", "DS", json!([z.parse::<f64>().unwrap_or(0.0)]));
    put("00280002", "US", json!([1]));
    put("00280004", "CS", json!(["MONOCHROME2"]));
    put("00280010", "US", json!([512]));
    put("00280011", "US", json!([512]));
    put("00280030", "DS", json!([0.683594, 0.683594]));
    put("00280100", "US", json!([16]));
    put("00280101", "US", json!([16]));
    put("00280102", "US", json!([15]));
    put("00280103", "US", json!([0]));
    put("00281050", "DS", json!([40, 400]));
    put("00281051", "DS", json!([400, 1500]));
    put("00281052", "DS", json!([-1024]));
    put("00281053", "DS", json!([1]));
    put("00281054", "LO", json!(["HU"]));
    put("00290010", "LO", json!(["LIGHTBOX BENCH PRIVATE"]));
    put("00291008", "CS", json!(["IMAGE NUM 4"]));
    put("00291009", "LO", json!(["2.0.1"]));
    m.insert(
        "00291020".into(),
        json!({"vr": "OB", "BulkDataURI": "bulk/00291020"}),
    );
    // A scanner's private acquisition block small enough to stay inline.
    let inline: String = (0..96)
        .map(|k| {
            let v = splitmix(k ^ n as u64) % 62;
            (if v < 26 {
                b'A' + v as u8
            } else if v < 52 {
                b'a' + (v - 26) as u8
            } else {
                b'0' + (v - 52) as u8
            }) as char
        })
        .collect();
    m.insert(
        "00291010".into(),
        json!({"vr": "OB", "InlineBinary": inline}),
    );
    m.insert(
        "7FE00010".into(),
        json!({"vr": "OW", "BulkDataURI": "bulk/7FE00010"}),
    );
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Generator;

    #[test]
    fn needles_have_rare_and_common_matches_and_patients_repeat() {
        let total = 200_000;
        let now = 1_780_000_000_000;
        let studies: Vec<DicomStudy> = Generator::new(7, total, 0, now)
            .map(|s| study(&s, total, now))
            .collect();
        let matching = |needle: &str| {
            let upper = needle.to_uppercase();
            studies
                .iter()
                .filter(|s| s.patient.name.contains(&upper))
                .count()
        };
        let rare = matching(RARE_NAME);
        let common = matching(COMMON_NAME);
        // ~25 per million studies: a few here; SMITH about 1 %.
        assert!((1..=20).contains(&rare), "{rare}");
        assert!((800..=4_000).contains(&common), "{common}");
        let patients: std::collections::HashSet<_> =
            studies.iter().map(|s| s.patient.id.clone()).collect();
        let per_patient = total as f64 / patients.len() as f64;
        assert!((2.0..3.5).contains(&per_patient), "{per_patient}");
        // Dates over ten years, newest today; a year's range holds ~a tenth.
        let range = last_year_range(now);
        let (from, to) = range.split_once('-').unwrap();
        let in_year = studies
            .iter()
            .filter(|s| s.study_date.as_str() >= from && s.study_date.as_str() <= to)
            .count() as f64
            / total as f64;
        assert!((0.07..0.13).contains(&in_year), "{in_year}");
        let ct_or_mr = studies
            .iter()
            .filter(|s| s.modalities.split('\\').any(|m| m == "CT" || m == "MR"))
            .count() as f64
            / total as f64;
        assert!((0.4..0.6).contains(&ct_or_mr), "{ct_or_mr}");
        assert!(studies.iter().all(|s| !s.series.is_empty()));
        // The same index gives the same study.
        let again = study(
            &Generator::new(7, total, 0, now).nth(5).unwrap(),
            total,
            now,
        );
        assert_eq!(again.attributes, studies[5].attributes);
    }

    #[test]
    fn an_instance_header_is_the_size_of_a_real_ct_slice() {
        let s = Generator::new(7, 10, 0, 1_780_000_000_000).next().unwrap();
        let st = study(&s, 10, 1_780_000_000_000);
        let json = instance_metadata(&st, &st.series[0], "2.25.1", 3);
        assert!((3_000..6_000).contains(&json.len()), "{}", json.len());
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["00200013"]["Value"][0], 3);
        assert_eq!(v["7FE00010"]["BulkDataURI"], "bulk/7FE00010");
    }
}
