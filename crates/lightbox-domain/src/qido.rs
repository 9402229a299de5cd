//! A QIDO-RS search as the index answers it: which level, which of the
//! index's attributes must match what, what else to return, and which page.
//! `lightbox-dicom` reads it from query parameters; `lightbox-store` turns it
//! into SQL. Only attributes the index keeps in a column can be matched
//! (PS3.18 lets a server ignore the others, with a warning).

/// Query levels, top down. A search at one level may match the attributes
/// of its own level and of the levels above it (the relational model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Study,
    Series,
    Instance,
}

/// How an attribute's values are matched (PS3.4 C.2.2.2), from its VR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// UI: a single UID or a list of UIDs (`,` or `\`); no wildcards.
    Uid,
    /// DA: a single date or a range `a-b`, `a-`, `-b`.
    Date,
    /// TM: a single time or a range; a partial time covers its whole unit.
    Time,
    /// Text with `*`/`?` wildcards; `case_insensitive` for person names.
    Text { case_insensitive: bool },
    /// CS: like text, and also a list of codes (`CT,MR`) matching any.
    Code,
    /// IS/US: a single integer.
    Integer,
}

macro_rules! attributes {
    ($($name:ident = ($group:literal, $element:literal, $keyword:literal, $vr:literal, $level:ident, $kind:expr);)*) => {
        /// The attributes the index keeps in columns, hence can match on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Attribute { $($name,)* }

        impl Attribute {
            pub const ALL: &'static [Attribute] = &[$(Attribute::$name,)*];

            /// The DICOM tag as (group, element).
            pub fn tag(self) -> (u16, u16) {
                match self { $(Attribute::$name => ($group, $element),)* }
            }

            pub fn keyword(self) -> &'static str {
                match self { $(Attribute::$name => $keyword,)* }
            }

            /// The value representation, as DICOM JSON names it.
            pub fn vr(self) -> &'static str {
                match self { $(Attribute::$name => $vr,)* }
            }

            pub fn level(self) -> Level {
                match self { $(Attribute::$name => Level::$level,)* }
            }

            pub fn kind(self) -> MatchKind {
                match self { $(Attribute::$name => $kind,)* }
            }
        }
    };
}

attributes! {
    StudyInstanceUid = (0x0020, 0x000D, "StudyInstanceUID", "UI", Study, MatchKind::Uid);
    PatientName = (0x0010, 0x0010, "PatientName", "PN", Study, MatchKind::Text { case_insensitive: true });
    PatientId = (0x0010, 0x0020, "PatientID", "LO", Study, MatchKind::Text { case_insensitive: false });
    PatientBirthDate = (0x0010, 0x0030, "PatientBirthDate", "DA", Study, MatchKind::Date);
    PatientSex = (0x0010, 0x0040, "PatientSex", "CS", Study, MatchKind::Code);
    StudyDate = (0x0008, 0x0020, "StudyDate", "DA", Study, MatchKind::Date);
    StudyTime = (0x0008, 0x0030, "StudyTime", "TM", Study, MatchKind::Time);
    AccessionNumber = (0x0008, 0x0050, "AccessionNumber", "SH", Study, MatchKind::Text { case_insensitive: false });
    ModalitiesInStudy = (0x0008, 0x0061, "ModalitiesInStudy", "CS", Study, MatchKind::Code);
    ReferringPhysicianName = (0x0008, 0x0090, "ReferringPhysicianName", "PN", Study, MatchKind::Text { case_insensitive: false });
    StudyId = (0x0020, 0x0010, "StudyID", "SH", Study, MatchKind::Text { case_insensitive: false });
    StudyDescription = (0x0008, 0x1030, "StudyDescription", "LO", Study, MatchKind::Text { case_insensitive: false });
    SeriesInstanceUid = (0x0020, 0x000E, "SeriesInstanceUID", "UI", Series, MatchKind::Uid);
    Modality = (0x0008, 0x0060, "Modality", "CS", Series, MatchKind::Code);
    SeriesNumber = (0x0020, 0x0011, "SeriesNumber", "IS", Series, MatchKind::Integer);
    SeriesDescription = (0x0008, 0x103E, "SeriesDescription", "LO", Series, MatchKind::Text { case_insensitive: false });
    SeriesDate = (0x0008, 0x0021, "SeriesDate", "DA", Series, MatchKind::Date);
    SeriesTime = (0x0008, 0x0031, "SeriesTime", "TM", Series, MatchKind::Time);
    SopInstanceUid = (0x0008, 0x0018, "SOPInstanceUID", "UI", Instance, MatchKind::Uid);
    SopClassUid = (0x0008, 0x0016, "SOPClassUID", "UI", Instance, MatchKind::Uid);
    InstanceNumber = (0x0020, 0x0013, "InstanceNumber", "IS", Instance, MatchKind::Integer);
    Rows = (0x0028, 0x0010, "Rows", "US", Instance, MatchKind::Integer);
    Columns = (0x0028, 0x0011, "Columns", "US", Instance, MatchKind::Integer);
    BitsAllocated = (0x0028, 0x0100, "BitsAllocated", "US", Instance, MatchKind::Integer);
    NumberOfFrames = (0x0028, 0x0008, "NumberOfFrames", "IS", Instance, MatchKind::Integer);
}

impl Attribute {
    pub fn by_tag(tag: (u16, u16)) -> Option<Attribute> {
        Attribute::ALL.iter().copied().find(|a| a.tag() == tag)
    }
}

/// One value a text, code or UID attribute may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// The value exactly (after upper-casing, for case-insensitive names).
    Literal(String),
    /// A DICOM wildcard pattern: `*` any run of characters, `?` any one.
    Wildcard(String),
}

/// What an attribute must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Any one of these (a single value is a list of one).
    OneOf(Vec<Pattern>),
    /// Between `from` and `to` inclusive, as the stored text compares
    /// (DA and TM values sort as text); an open end is None.
    Range {
        from: Option<String>,
        to: Option<String>,
    },
    Integer(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attribute: Attribute,
    pub condition: Condition,
}

/// What a search returns beyond the level's default attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Include {
    #[default]
    Defaults,
    /// These tags too, from the stored DICOM JSON.
    Tags(Vec<(u16, u16)>),
    /// Every attribute the index keeps for each result.
    All,
}

impl Include {
    pub fn is_defaults(&self) -> bool {
        matches!(self, Include::Defaults)
    }
}

/// Results a page holds when the request names no `limit`: searches over
/// the organization's studies, series or instances.
pub const DEFAULT_LIMIT: u32 = 100;
/// ...and searches within one study or series, which usually fit one page.
pub const DEFAULT_LIMIT_WITHIN_STUDY: u32 = 1000;
/// The most results one page holds, whatever `limit` asks for.
pub const MAX_LIMIT: u32 = 1000;
/// The deepest `offset`: deeper pages mean a query to narrow, and an OFFSET
/// walks every row it skips.
pub const MAX_OFFSET: u32 = 100_000;

/// A QIDO-RS search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub level: Level,
    /// The study the resource path names (`/studies/{st}/...`).
    pub study: Option<String>,
    /// The series the resource path names (`.../series/{se}/instances`).
    pub series: Option<String>,
    pub filters: Vec<Filter>,
    pub include: Include,
    pub limit: u32,
    pub offset: u32,
}
