//! QIDO-RS searches over the DICOM index: studies, series and instances
//! matched by attribute, newest first, in bounded pages.
//!
//! Every value is a bound parameter. The organization leads every WHERE
//! clause and the order ends with a unique key, so a page is an index walk
//! that stops after `limit + 1` rows (the extra row only says whether there
//! is more). Counts and modalities are the study's stored columns, never
//! counted per request.
//!
//! Wildcards: PostgreSQL gets `LIKE … ESCAPE '\'`; SQLite gets `GLOB`,
//! because SQLite's LIKE ignores ASCII case (DICOM wildcards are
//! case-sensitive except for names, which match an upper-cased column) and,
//! being case-insensitive, cannot use the BINARY index for a prefix pattern,
//! which GLOB can.

use crate::sql::{like_escape, Sql};
use crate::sqlite_reader::Row;
use crate::{Dialect, Store, StoreError};
use lightbox_domain::dicom::{SeriesAttributes, StudyAttributes};
use lightbox_domain::qido::{Attribute, Condition, Filter, Level, Pattern, Query};
use lightbox_domain::OrgId;

/// A study as QIDO returns it: what the index keeps of it, with the counts
/// and modalities its series and instances add up to.
#[derive(Debug, Clone)]
pub struct QidoStudy {
    pub attributes: StudyAttributes,
    /// Distinct modalities, sorted.
    pub modalities: Vec<String>,
    pub series_count: i64,
    pub instance_count: i64,
}

#[derive(Debug, Clone)]
pub struct QidoSeries {
    pub attributes: SeriesAttributes,
    pub instance_count: i64,
}

#[derive(Debug, Clone)]
pub struct QidoInstance {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub number_of_frames: Option<i64>,
    /// The instance's DICOM JSON, read only when the query includes more
    /// than the default attributes.
    pub metadata: Option<String>,
}

/// One result with the levels above it: a study alone, a series with its
/// study, an instance with its series and study.
#[derive(Debug, Clone)]
pub struct QidoRow {
    pub study: QidoStudy,
    pub series: Option<QidoSeries>,
    pub instance: Option<QidoInstance>,
}

/// A page of results, and whether more matched than the page holds.
#[derive(Debug, Clone)]
pub struct QidoPage {
    pub rows: Vec<QidoRow>,
    pub more: bool,
}

const STUDY_COLUMNS: &str = "st.study_instance_uid, st.patient_name, st.patient_id, \
     st.patient_birth_date, st.patient_sex, st.study_date, st.study_time, st.accession_number, \
     st.referring_physician_name, st.study_id, st.study_description, st.modalities, \
     CAST(st.series_count AS BIGINT) AS study_series_count, \
     CAST(st.instance_count AS BIGINT) AS study_instance_count, st.attributes AS study_attributes";
const SERIES_COLUMNS: &str = "se.series_instance_uid, se.modality, \
     CAST(se.series_number AS BIGINT) AS series_number, se.series_description, se.series_date, \
     se.series_time, CAST(se.instance_count AS BIGINT) AS series_instance_count, \
     se.attributes AS series_attributes";
const INSTANCE_COLUMNS: &str = "i.sop_instance_uid, i.sop_class_uid, \
     CAST(i.instance_number AS BIGINT) AS instance_number, CAST(i.pixel_rows AS BIGINT) AS pixel_rows, \
     CAST(i.pixel_columns AS BIGINT) AS pixel_columns, \
     CAST(i.bits_allocated AS BIGINT) AS bits_allocated, \
     CAST(i.number_of_frames AS BIGINT) AS number_of_frames";

impl Store {
    /// The page of `query`'s results in the organization, within `scope`
    /// (the studies a scoped caller may read; None for the whole archive).
    pub async fn qido_search(
        &self,
        org_id: OrgId,
        scope: Option<&[String]>,
        query: &Query,
    ) -> Result<QidoPage, StoreError> {
        if scope.is_some_and(|uids| uids.is_empty()) {
            return Ok(QidoPage {
                rows: Vec::new(),
                more: false,
            });
        }
        let mut rows = match sqlite_study_plan(self.dialect, scope, query) {
            StudyPlan::Plain => match self.uncommon_name_years(query).await? {
                Some(keys) => {
                    self.page(org_id, scope, query, Source::TableWithNameYears(&keys))
                        .await?
                }
                None => self.plain_page(org_id, scope, query).await?,
            },
            StudyPlan::NameIndex(phrases) => self.name_index_page(org_id, query, &phrases).await?,
            StudyPlan::Walk => match self.walk_page(org_id, query).await? {
                Some(rows) => rows,
                None => self.plain_page(org_id, scope, query).await?,
            },
        };
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        Ok(QidoPage { rows, more })
    }

    /// The page (and one more row) as one query, planned by the database.
    async fn plain_page(
        &self,
        org_id: OrgId,
        scope: Option<&[String]>,
        query: &Query,
    ) -> Result<Vec<QidoRow>, StoreError> {
        self.page(org_id, scope, query, Source::Table).await
    }

    async fn page(
        &self,
        org_id: OrgId,
        scope: Option<&[String]>,
        query: &Query,
        from: Source<'_>,
    ) -> Result<Vec<QidoRow>, StoreError> {
        let sql = search_sql(self.dialect, org_id, scope, query, from);
        let shape = RowShape::of(query);
        self.read_rows(sql, move |row| read_row(row, shape).map(Some))
            .await
    }

    /// PostgreSQL: the name-year keys for a study search by a PatientName
    /// wildcard within a few years, when PostgreSQL's statistics put the
    /// studies those keys would read under [`MOST_NAME_YEAR_CANDIDATES`].
    /// The planner cannot make this choice itself: it estimates the keys as
    /// the product of each trigram's frequency (and the LIKE's again), so it
    /// would read every candidate of a very common name (`*SON*`: 22,000 at
    /// 1M studies, 300 ms) where walking the newest studies finds a page in
    /// 5 ms. The estimate is one `EXPLAIN` of the name and the years alone,
    /// over every organization: the keys' index is not scoped by one, so
    /// that is what they would read.
    async fn uncommon_name_years(&self, query: &Query) -> Result<Option<NameYears>, StoreError> {
        if self.dialect != Dialect::Postgres || query.level != Level::Study {
            return Ok(None);
        }
        let Some(keys) = NameYears::of(&query.filters) else {
            return Ok(None);
        };
        let mut sql =
            Sql::new("EXPLAIN SELECT 1 FROM dicom_studies WHERE patient_name_search LIKE ");
        sql.bind(keys.like.as_str())
            .push(" ESCAPE '\\' AND study_date >= ")
            .bind(keys.first_year())
            .push(" AND study_date < ")
            .bind(keys.after_last_year());
        sql.plan_each_time();
        let lines = self
            .read_rows(sql, |row| Ok(Some(row.get::<String>("QUERY PLAN")?)))
            .await?;
        let candidates = lines.first().and_then(|line| estimated_rows(line));
        Ok(candidates
            .is_some_and(|n| n <= MOST_NAME_YEAR_CANDIDATES)
            .then_some(keys))
    }

    /// SQLite, studies: the newest studies walked by `dicom_studies_newest`,
    /// every filter tested per row, stopping after the page. The walk is bounded
    /// to the newest `WALK_BUDGET` studies (or four times the rows the page
    /// needs): None when the page is not filled within them, for the plain plan
    /// to answer (matches that are few or old are found faster by its indexes).
    async fn walk_page(
        &self,
        org_id: OrgId,
        query: &Query,
    ) -> Result<Option<Vec<QidoRow>>, StoreError> {
        let need = page_rows(query);
        let budget = WALK_BUDGET.max(need.saturating_mul(4));
        // The budget's oldest `created_at`, from the index alone; None when the
        // organization has no more studies than the budget.
        let mut oldest = Sql::new(
            "SELECT created_at FROM dicom_studies INDEXED BY dicom_studies_newest WHERE org_id = ",
        );
        oldest
            .bind(org_id.to_string())
            .push(" ORDER BY created_at DESC LIMIT 1 OFFSET ")
            .bind(i64::try_from(budget).unwrap_or(i64::MAX));
        let bound: Option<i64> = self
            .read_rows(oldest, |row| row.get("created_at").map(Some))
            .await?
            .pop();
        let sql = search_sql(
            self.dialect,
            org_id,
            None,
            query,
            Source::NewestSince(bound),
        );
        let shape = RowShape::of(query);
        let rows = self
            .read_rows(sql, move |row| read_row(row, shape).map(Some))
            .await?;
        if bound.is_some() && rows.len() < need {
            return Ok(None);
        }
        Ok(Some(rows))
    }

    /// SQLite, studies: the matches of the trigram index on patient names
    /// (0015), read newest first as its keys are ordered, every filter tested
    /// per row. Keys order by `created_at` but not within one millisecond, so
    /// reading goes on while the page's last millisecond lasts, and that is
    /// sorted by the plain query's order.
    async fn name_index_page(
        &self,
        org_id: OrgId,
        query: &Query,
        phrases: &str,
    ) -> Result<Vec<QidoRow>, StoreError> {
        let need = page_rows(query);
        let sql = search_sql(
            self.dialect,
            org_id,
            None,
            query,
            Source::NameIndex(phrases),
        );
        let shape = RowShape::of(query);
        // The `created_at` of the page's last row, once that is read.
        let mut last_of_page: Option<i64> = None;
        let mut read = 0;
        let mut found = self
            .read_rows(sql, move |row| {
                let created_at: i64 = row.get("study_created_at")?;
                if last_of_page.is_some_and(|last| created_at < last) {
                    return Ok(None);
                }
                read += 1;
                if read == need {
                    last_of_page = Some(created_at);
                }
                Ok(Some((created_at, read_row(row, shape)?)))
            })
            .await?;
        found.sort_by(|(a_at, a), (b_at, b)| {
            b_at.cmp(a_at).then_with(|| {
                b.study
                    .attributes
                    .study_instance_uid
                    .cmp(&a.study.attributes.study_instance_uid)
            })
        });
        Ok(found
            .into_iter()
            .skip(query.offset as usize)
            .take(query.limit as usize + 1)
            .map(|(_, row)| row)
            .collect())
    }

    /// Whether the study (and series, when given) of a resource path is in
    /// the organization and within `scope`: a search under a path that is
    /// not is 404, like every other read of it.
    pub async fn qido_path_exists(
        &self,
        org_id: OrgId,
        scope: Option<&[String]>,
        study: &str,
        series: Option<&str>,
    ) -> Result<bool, StoreError> {
        if scope.is_some_and(|uids| !uids.iter().any(|u| u == study)) {
            return Ok(false);
        }
        let mut sql = match series {
            None => Sql::new("SELECT 1 FROM dicom_studies WHERE org_id = "),
            Some(_) => Sql::new("SELECT 1 FROM dicom_series WHERE org_id = "),
        };
        sql.bind(org_id.to_string())
            .push(" AND study_instance_uid = ")
            .bind(study);
        if let Some(series) = series {
            sql.push(" AND series_instance_uid = ").bind(series);
        }
        Ok(sql.query().fetch_optional(&self.read).await?.is_some())
    }
}

/// How a SQLite study search reads its page (every other search is `Plain`).
#[derive(Debug, PartialEq, Eq)]
enum StudyPlan {
    /// One query, planned by the database.
    Plain,
    /// The patient-name trigram index (0015), with this FTS5 expression.
    NameIndex(String),
    /// The newest studies first, within a budget, else `Plain`.
    Walk,
}

/// Studies the walk reads at most before the plain plan answers instead. At
/// 1M studies a walked row costs ~1 µs, so a walk that finds no page costs
/// ~10 ms more than the plain plan alone.
const WALK_BUDGET: usize = 10_000;

/// Rows a page needs: those it skips, those it holds, and one more to tell
/// whether another follows.
fn page_rows(query: &Query) -> usize {
    query.offset as usize + query.limit as usize + 1
}

/// Which plan answers a search on SQLite. A study search that no index
/// narrows down (no UID, Patient ID, accession number or name prefix) would
/// otherwise be read by the StudyDate index (a year's studies at 1M: ~100,000
/// rows read and sorted for a page of 101); a name with a run of three literal
/// characters goes to the trigram index instead, and the rest to the walk.
/// PostgreSQL's planner makes these choices itself (0014).
fn sqlite_study_plan(dialect: Dialect, scope: Option<&[String]>, query: &Query) -> StudyPlan {
    if dialect != Dialect::Sqlite
        || query.level != Level::Study
        || scope.is_some()
        || query.study.is_some()
    {
        return StudyPlan::Plain;
    }
    if query.filters.iter().any(narrowed_by_index) {
        return StudyPlan::Plain;
    }
    query
        .filters
        .iter()
        .find_map(|f| match (&f.attribute, &f.condition) {
            (Attribute::PatientName, Condition::OneOf(patterns)) if patterns.len() == 1 => {
                match &patterns[0] {
                    Pattern::Wildcard(p) => fts5_phrases(&p.to_uppercase()),
                    Pattern::Literal(_) => None,
                }
            }
            _ => None,
        })
        .map_or(StudyPlan::Walk, StudyPlan::NameIndex)
}

/// Whether an index of 0009 finds the filter's few matches directly: equal
/// values (or, for names, a literal prefix) of a UID, Patient ID, accession
/// number or name.
fn narrowed_by_index(filter: &Filter) -> bool {
    let indexed = matches!(
        filter.attribute,
        Attribute::StudyInstanceUid
            | Attribute::PatientId
            | Attribute::AccessionNumber
            | Attribute::PatientName
    );
    let Condition::OneOf(patterns) = &filter.condition else {
        return false;
    };
    indexed
        && patterns.iter().all(|p| match p {
            Pattern::Literal(_) => true,
            Pattern::Wildcard(w) => {
                filter.attribute == Attribute::PatientName && !w.starts_with(['*', '?'])
            }
        })
}

/// A wildcard pattern's literal runs of three characters or more as an FTS5
/// expression (each a quoted trigram phrase, i.e. a substring, all required);
/// None when it has none, since the trigram index cannot match shorter text.
fn fts5_phrases(pattern: &str) -> Option<String> {
    let phrases: Vec<String> = pattern
        .split(['*', '?'])
        .filter(|run| run.chars().count() >= 3)
        .map(|run| format!("\"{}\"", run.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" AND "))
}

/// Where a study search reads its rows from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The table, as the database plans it.
    Table,
    /// SQLite: `dicom_studies_newest` walked backwards, down to this
    /// `created_at` (None: to the oldest).
    NewestSince(Option<i64>),
    /// SQLite: the name trigram index's matches of this expression, newest
    /// key first, unlimited (the caller stops reading).
    NameIndex(&'a str),
    /// PostgreSQL: the table, with the name-year keys' condition.
    TableWithNameYears(&'a NameYears),
}

fn search_sql(
    dialect: Dialect,
    org_id: OrgId,
    scope: Option<&[String]>,
    query: &Query,
    from: Source<'_>,
) -> Sql {
    let with_metadata = query.level == Level::Instance && !query.include.is_defaults();
    let mut sql = Sql::new("SELECT ");
    sql.push(STUDY_COLUMNS);
    // The table whose rows are the results, which the level's own keys are on.
    let own = match query.level {
        Level::Study => {
            match from {
                Source::Table | Source::TableWithNameYears(_) => {
                    sql.push(" FROM dicom_studies st WHERE st.org_id = ");
                }
                Source::NewestSince(bound) => {
                    sql.push(" FROM dicom_studies st INDEXED BY dicom_studies_newest WHERE ");
                    if let Some(bound) = bound {
                        sql.push("st.created_at >= ").bind(bound).push(" AND ");
                    }
                    sql.push("st.org_id = ");
                }
                Source::NameIndex(phrases) => {
                    // Led by the FTS5 table, whose rowid order is the walk's.
                    sql.push(
                        ", st.created_at AS study_created_at \
                         FROM dicom_studies_name_search f \
                         CROSS JOIN dicom_studies_name_keys k \
                         CROSS JOIN dicom_studies st \
                         WHERE f.patient_name_search MATCH ",
                    )
                    .bind(phrases)
                    .push(
                        " AND k.search_id = f.rowid AND st.org_id = k.org_id \
                         AND st.study_instance_uid = k.study_instance_uid AND k.org_id = ",
                    )
                    .bind(org_id.to_string())
                    .push(" AND st.org_id = ");
                }
            }
            "st"
        }
        Level::Series => {
            sql.push(", ").push(SERIES_COLUMNS).push(
                " FROM dicom_series se JOIN dicom_studies st \
                 ON st.org_id = se.org_id AND st.study_instance_uid = se.study_instance_uid \
                 WHERE se.org_id = ",
            );
            "se"
        }
        Level::Instance => {
            sql.push(", ")
                .push(SERIES_COLUMNS)
                .push(", ")
                .push(INSTANCE_COLUMNS);
            if with_metadata {
                sql.push(", i.metadata");
            }
            sql.push(
                " FROM dicom_instances i JOIN dicom_series se \
                 ON se.org_id = i.org_id AND se.series_instance_uid = i.series_instance_uid \
                 JOIN dicom_studies st \
                 ON st.org_id = i.org_id AND st.study_instance_uid = i.study_instance_uid \
                 WHERE i.org_id = ",
            );
            "i"
        }
    };
    sql.bind(org_id.to_string());
    if let Some(uids) = scope {
        sql.push(&format!(" AND {own}.study_instance_uid IN ("));
        for (n, uid) in uids.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.bind(uid.as_str());
        }
        sql.push(")");
    }
    if let Some(study) = &query.study {
        sql.push(&format!(" AND {own}.study_instance_uid = "))
            .bind(study.as_str());
    }
    if let Some(series) = &query.series {
        sql.push(&format!(" AND {own}.series_instance_uid = "))
            .bind(series.as_str());
    }
    for filter in &query.filters {
        sql.push(" AND ");
        condition(dialect, &mut sql, own, filter.attribute, &filter.condition);
    }
    if let Source::TableWithNameYears(keys) = from {
        keys.push(&mut sql);
    }
    if let Source::NameIndex(_) = from {
        sql.push(" ORDER BY f.rowid DESC");
        return sql;
    }
    // Nulls last on both engines (SQLite sorts them first, PostgreSQL last).
    sql.push(match (query.level, &query.study, &query.series) {
        (Level::Study, _, _) => " ORDER BY st.created_at DESC, st.study_instance_uid DESC",
        (Level::Series, Some(_), _) => {
            " ORDER BY (se.series_number IS NULL), se.series_number, se.series_instance_uid"
        }
        (Level::Series, None, _) => " ORDER BY se.created_at DESC, se.series_instance_uid DESC",
        (Level::Instance, _, Some(_)) => {
            " ORDER BY (i.instance_number IS NULL), i.instance_number, i.sop_instance_uid"
        }
        (Level::Instance, Some(_), None) => {
            " ORDER BY (se.series_number IS NULL), se.series_number, i.series_instance_uid, \
             (i.instance_number IS NULL), i.instance_number, i.sop_instance_uid"
        }
        (Level::Instance, None, None) => " ORDER BY i.created_at DESC, i.sop_instance_uid DESC",
    });
    sql.push(" LIMIT ")
        .bind(i64::from(query.limit) + 1)
        .push(" OFFSET ")
        .bind(i64::from(query.offset));
    if dialect == Dialect::Postgres && query.filters.iter().any(depends_on_values) {
        sql.plan_each_time();
    }
    sql
}

/// A PostgreSQL study search by a PatientName wildcard and a StudyDate
/// range, as keys of the `dicom_name_year_trigrams` index (migration 0018):
/// the name's trigrams under each year of the range. A common name's
/// trigram matches ANDed with a year of the StudyDate index cost ~10 ms at
/// 1M studies; its trigrams within one or two years are a few hundred
/// studies. The condition added only narrows what the plain conditions
/// (kept as they are) already require, so results are the same. Used only
/// for names the statistics call uncommon (`Store::uncommon_name_years`).
#[derive(Debug, PartialEq, Eq)]
struct NameYears {
    /// The name's `LIKE` pattern, for the estimate.
    like: String,
    /// Lower-case trigrams every matching name contains.
    trigrams: Vec<String>,
    /// The first and last year of the range.
    from: i32,
    to: i32,
}

/// Beyond this many years the range is left to the StudyDate index.
const MOST_NAME_YEARS: i32 = 3;
/// Enough trigrams for a needle's keys to be rare; more only cost look-ups.
const MOST_NAME_TRIGRAMS: usize = 6;
/// The most studies the keys may read (each one a heap row rechecked):
/// ~2,000 cost PostgreSQL ~10–25 ms at 1M studies, where a name this common
/// fills a page by walking the newest studies.
const MOST_NAME_YEAR_CANDIDATES: u64 = 2_000;

impl NameYears {
    fn of(filters: &[Filter]) -> Option<NameYears> {
        let mut pattern = None;
        let mut range = None;
        for filter in filters {
            match (&filter.attribute, &filter.condition) {
                (Attribute::PatientName, Condition::OneOf(patterns)) => match patterns.as_slice() {
                    [Pattern::Wildcard(p)] => pattern = Some(p.to_uppercase()),
                    _ => return None,
                },
                (
                    Attribute::StudyDate,
                    Condition::Range {
                        from: Some(from),
                        to: Some(to),
                    },
                ) => range = Some((year(from)?, year(to)?)),
                _ => {}
            }
        }
        let (from, to) = range?;
        if to < from || to - from >= MOST_NAME_YEARS {
            return None;
        }
        let pattern = pattern?;
        let trigrams = name_trigrams(&pattern);
        if trigrams.is_empty() {
            return None;
        }
        Some(NameYears {
            like: like_pattern(&pattern),
            trigrams,
            from,
            to,
        })
    }

    /// Each year of the range, and `*` (a stored date that does not start
    /// with four digits).
    fn years(&self) -> impl Iterator<Item = String> {
        (self.from..=self.to)
            .map(|y| format!("{y:04}"))
            .chain(std::iter::once("*".to_owned()))
    }

    /// The range's whole years as StudyDate bounds: `>= first`, `< after`.
    fn first_year(&self) -> String {
        format!("{:04}", self.from)
    }

    fn after_last_year(&self) -> String {
        format!("{:04}", self.to + 1)
    }

    /// `AND (keys @> ARRAY[year||trigram, …] OR …)`, one arm a year.
    fn push(&self, sql: &mut Sql) {
        sql.push(" AND (");
        for (n, year) in self.years().enumerate() {
            if n > 0 {
                sql.push(" OR ");
            }
            sql.push("dicom_name_year_trigrams(st.patient_name_search, st.study_date) @> ARRAY[");
            for (k, trigram) in self.trigrams.iter().enumerate() {
                if k > 0 {
                    sql.push(", ");
                }
                sql.bind(format!("{year}{trigram}"));
            }
            sql.push("]::text[]");
        }
        sql.push(")");
    }
}

/// The row count of an `EXPLAIN` line (`… rows=4821 width=4)`).
fn estimated_rows(line: &str) -> Option<u64> {
    let rest = &line[line.find(" rows=")? + 6..];
    rest[..rest.find(' ')?].parse().ok()
}

/// The year of a `YYYYMMDD` bound.
fn year(date: &str) -> Option<i32> {
    let year = date.get(..4)?;
    year.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| year.parse().ok())?
}

/// The trigrams pg_trgm's `show_trgm` gives every name that matches the
/// wildcard `pattern`: those inside a run of ASCII letters and digits (such
/// a run lies inside one word of the name, whatever surrounds it; other
/// characters separate words or fold by locale, so they are left out),
/// lower-cased as pg_trgm does, the longest runs' first.
fn name_trigrams(pattern: &str) -> Vec<String> {
    let mut runs: Vec<&str> = pattern
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= 3)
        .collect();
    runs.sort_by_key(|run| std::cmp::Reverse(run.len()));
    let mut trigrams: Vec<String> = Vec::new();
    for run in runs {
        for at in 0..=run.len() - 3 {
            let trigram = run[at..at + 3].to_ascii_lowercase();
            if !trigrams.contains(&trigram) && trigrams.len() < MOST_NAME_TRIGRAMS {
                trigrams.push(trigram);
            }
        }
    }
    trigrams
}

/// Whether the best plan for a filter depends on its values, so that a
/// prepared statement's generic plan (PostgreSQL's, after five runs) would be
/// wrong for some of them. Measured at 1M studies: the generic plan for a
/// `PatientName=*x*` search ANDs the trigram bitmap with a whole year of the
/// StudyDate index (14.5 ms) where the plan for a rare name reads its 37
/// trigram matches (0.1 ms); for a search by date and modality alone the
/// generic plan sorts the year (250 ms) instead of walking newest first.
fn depends_on_values(filter: &Filter) -> bool {
    match &filter.condition {
        Condition::OneOf(patterns) => {
            filter.attribute == Attribute::ModalitiesInStudy
                || patterns.iter().any(|p| matches!(p, Pattern::Wildcard(_)))
        }
        Condition::Range { .. } => true,
        Condition::Integer(_) => false,
    }
}

/// The column an attribute matches, in the query's tables (`own` is the
/// results' table, which carries the study and series UIDs too).
fn column(attribute: Attribute, own: &str) -> String {
    let column = match attribute {
        Attribute::StudyInstanceUid => return format!("{own}.study_instance_uid"),
        Attribute::SeriesInstanceUid => return format!("{own}.series_instance_uid"),
        Attribute::PatientName => "st.patient_name_search",
        Attribute::PatientId => "st.patient_id",
        Attribute::PatientBirthDate => "st.patient_birth_date",
        Attribute::PatientSex => "st.patient_sex",
        Attribute::StudyDate => "st.study_date",
        Attribute::StudyTime => "st.study_time",
        Attribute::AccessionNumber => "st.accession_number",
        Attribute::ModalitiesInStudy => "st.modalities",
        Attribute::ReferringPhysicianName => "st.referring_physician_name",
        Attribute::StudyId => "st.study_id",
        Attribute::StudyDescription => "st.study_description",
        Attribute::Modality => "se.modality",
        Attribute::SeriesNumber => "se.series_number",
        Attribute::SeriesDescription => "se.series_description",
        Attribute::SeriesDate => "se.series_date",
        Attribute::SeriesTime => "se.series_time",
        Attribute::SopInstanceUid => "i.sop_instance_uid",
        Attribute::SopClassUid => "i.sop_class_uid",
        Attribute::InstanceNumber => "i.instance_number",
        Attribute::Rows => "i.pixel_rows",
        Attribute::Columns => "i.pixel_columns",
        Attribute::BitsAllocated => "i.bits_allocated",
        Attribute::NumberOfFrames => "i.number_of_frames",
    };
    column.to_owned()
}

fn condition(dialect: Dialect, sql: &mut Sql, own: &str, attribute: Attribute, cond: &Condition) {
    let col = column(attribute, own);
    if matches!(cond, Condition::OneOf(patterns) if patterns.is_empty()) {
        sql.push("1 = 0");
        return;
    }
    // Names match the upper-cased column, so their values are upper-cased too.
    let fold = |s: &str| match attribute {
        Attribute::PatientName => s.to_uppercase(),
        _ => s.to_owned(),
    };
    match cond {
        Condition::Integer(n) => {
            sql.push(&format!("{col} = ")).bind(*n);
        }
        Condition::Range { from, to } => {
            sql.push(&format!("{col} IS NOT NULL"));
            if let Some(from) = from {
                sql.push(&format!(" AND {col} >= ")).bind(from.as_str());
            }
            if let Some(to) = to {
                sql.push(&format!(" AND {col} <= ")).bind(to.as_str());
            }
        }
        Condition::OneOf(patterns) if attribute == Attribute::ModalitiesInStudy => {
            // `CT\MR` holds CT when `\CT\MR\` contains `\CT\`.
            sql.push("(");
            for (n, pattern) in patterns.iter().enumerate() {
                if n > 0 {
                    sql.push(" OR ");
                }
                let (Pattern::Literal(p) | Pattern::Wildcard(p)) = pattern;
                let wild = matches!(pattern, Pattern::Wildcard(_));
                match dialect {
                    Dialect::Postgres => {
                        let inner = if wild {
                            like_pattern(p)
                        } else {
                            like_escape(p)
                        };
                        sql.push(&format!("('\\' || {col} || '\\') LIKE "))
                            .bind(format!("%\\\\{inner}\\\\%"))
                            .push(" ESCAPE '\\'");
                    }
                    Dialect::Sqlite => {
                        let inner = if wild {
                            glob_pattern(p)
                        } else {
                            glob_escape(p)
                        };
                        sql.push(&format!("('\\' || {col} || '\\') GLOB "))
                            .bind(format!("*\\{inner}\\*"));
                    }
                }
            }
            sql.push(")");
        }
        Condition::OneOf(patterns) => {
            let literals: Vec<&str> = patterns
                .iter()
                .filter_map(|p| match p {
                    Pattern::Literal(s) => Some(s.as_str()),
                    Pattern::Wildcard(_) => None,
                })
                .collect();
            let mut terms = 0;
            sql.push("(");
            if !literals.is_empty() {
                sql.push(&format!("{col} IN ("));
                for (n, literal) in literals.iter().enumerate() {
                    if n > 0 {
                        sql.push(", ");
                    }
                    sql.bind(fold(literal));
                }
                sql.push(")");
                terms += 1;
            }
            for pattern in patterns {
                let Pattern::Wildcard(p) = pattern else {
                    continue;
                };
                if terms > 0 {
                    sql.push(" OR ");
                }
                terms += 1;
                match dialect {
                    Dialect::Postgres => {
                        sql.push(&format!("{col} LIKE "))
                            .bind(like_pattern(&fold(p)))
                            .push(" ESCAPE '\\'");
                    }
                    Dialect::Sqlite => {
                        sql.push(&format!("{col} GLOB "))
                            .bind(glob_pattern(&fold(p)));
                    }
                }
            }
            sql.push(")");
        }
    }
}

/// A DICOM wildcard pattern as a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(dicom: &str) -> String {
    like_escape(dicom).replace('*', "%").replace('?', "_")
}

/// Text matched literally inside a GLOB pattern: only `*`, `?` and `[` are
/// special, and `[x]` matches x literally.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// A DICOM wildcard pattern as a GLOB pattern (same `*` and `?`).
fn glob_pattern(dicom: &str) -> String {
    dicom.replace('[', "[[]")
}

/// What a search's rows hold beyond the study.
#[derive(Debug, Clone, Copy)]
struct RowShape {
    level: Level,
    metadata: bool,
}

impl RowShape {
    fn of(query: &Query) -> RowShape {
        RowShape {
            level: query.level,
            metadata: !query.include.is_defaults(),
        }
    }
}

fn read_row(row: &Row<'_>, shape: RowShape) -> Result<QidoRow, StoreError> {
    let modalities: String = row.get("modalities")?;
    let study = QidoStudy {
        attributes: StudyAttributes {
            study_instance_uid: row.get("study_instance_uid")?,
            patient_name: row.get("patient_name")?,
            patient_id: row.get("patient_id")?,
            patient_birth_date: row.get("patient_birth_date")?,
            patient_sex: row.get("patient_sex")?,
            study_date: row.get("study_date")?,
            study_time: row.get("study_time")?,
            accession_number: row.get("accession_number")?,
            referring_physician_name: row.get("referring_physician_name")?,
            study_id: row.get("study_id")?,
            study_description: row.get("study_description")?,
            json: row.get("study_attributes")?,
        },
        modalities: crate::dicom::modalities_of(&modalities),
        series_count: row.get("study_series_count")?,
        instance_count: row.get("study_instance_count")?,
    };
    let series = if shape.level >= Level::Series {
        Some(QidoSeries {
            attributes: SeriesAttributes {
                series_instance_uid: row.get("series_instance_uid")?,
                modality: row.get("modality")?,
                series_number: row.get("series_number")?,
                series_description: row.get("series_description")?,
                series_date: row.get("series_date")?,
                series_time: row.get("series_time")?,
                json: row.get("series_attributes")?,
            },
            instance_count: row.get("series_instance_count")?,
        })
    } else {
        None
    };
    let instance = if shape.level == Level::Instance {
        Some(QidoInstance {
            sop_instance_uid: row.get("sop_instance_uid")?,
            sop_class_uid: row.get("sop_class_uid")?,
            instance_number: row.get("instance_number")?,
            rows: row.get("pixel_rows")?,
            columns: row.get("pixel_columns")?,
            bits_allocated: row.get("bits_allocated")?,
            number_of_frames: row.get("number_of_frames")?,
            metadata: if shape.metadata {
                row.get("metadata")?
            } else {
                None
            },
        })
    } else {
        None
    };
    Ok(QidoRow {
        study,
        series,
        instance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_keep_the_values_own_specials_literal() {
        assert_eq!(like_pattern("*50%_off?"), "%50\\%\\_off_");
        assert_eq!(glob_pattern("*a[1]?"), "*a[[]1]?");
        assert_eq!(glob_escape("C*[T]?"), "C[*][[]T][?]");
    }

    /// OHIF's study search: the newest 101 studies matching `filters`.
    fn studies(filters: Vec<Filter>) -> Query {
        Query {
            level: Level::Study,
            study: None,
            series: None,
            filters,
            include: Default::default(),
            limit: 101,
            offset: 0,
        }
    }

    #[test]
    fn name_years_are_the_trigrams_every_match_has_under_each_year_of_the_range() {
        let name = |p: &str| Filter {
            attribute: Attribute::PatientName,
            condition: Condition::OneOf(vec![Pattern::Wildcard(p.into())]),
        };
        let dates = |from: &str, to: &str| Filter {
            attribute: Attribute::StudyDate,
            condition: Condition::Range {
                from: Some(from.into()),
                to: Some(to.into()),
            },
        };
        let keys = NameYears::of(&[name("*smith*"), dates("20251203", "20261203")]).unwrap();
        assert_eq!(keys.like, "%SMITH%");
        assert_eq!(keys.trigrams, ["smi", "mit", "ith"]);
        assert_eq!(keys.years().collect::<Vec<_>>(), ["2025", "2026", "*"]);
        assert_eq!(
            (keys.first_year(), keys.after_last_year()),
            ("2025".into(), "2027".into())
        );
        assert_eq!(
            estimated_rows(
                "Bitmap Heap Scan on dicom_studies  (cost=101.37..16321.28 rows=4821 width=4)"
            ),
            Some(4821)
        );
        assert_eq!(estimated_rows("Result"), None);
        // Runs split at wildcards, punctuation and non-ASCII letters.
        assert_eq!(
            name_trigrams("O'BRIEN^J?HN*MÜLLERSON"),
            ["lle", "ler", "ers", "rso", "son", "bri"]
        );
        assert_eq!(name_trigrams("*AB*C?D*"), Vec::<String>::new());
        for filters in [
            vec![name("*ab*"), dates("20250101", "20251231")],
            vec![name("*smith*"), dates("20200101", "20251231")],
            vec![name("*smith*")],
            vec![
                name("*smith*"),
                Filter {
                    attribute: Attribute::StudyDate,
                    condition: Condition::Range {
                        from: Some("20250101".into()),
                        to: None,
                    },
                },
            ],
            vec![
                Filter {
                    attribute: Attribute::PatientName,
                    condition: Condition::OneOf(vec![
                        Pattern::Wildcard("*SMITH*".into()),
                        Pattern::Wildcard("*JONES*".into()),
                    ]),
                },
                dates("20250101", "20251231"),
            ],
        ] {
            assert_eq!(NameYears::of(&filters), None, "{filters:?}");
        }
    }

    #[test]
    fn postgres_plans_searches_whose_best_plan_depends_on_their_values_each_time() {
        let one = |attribute, pattern| Filter {
            attribute,
            condition: Condition::OneOf(vec![pattern]),
        };
        let planned_each_time = |dialect, filters| {
            search_sql(
                dialect,
                OrgId::generate(),
                None,
                &studies(filters),
                Source::Table,
            )
            .plans_each_time()
        };
        let name = one(Attribute::PatientName, Pattern::Wildcard("*zwieb*".into()));
        let dates = Filter {
            attribute: Attribute::StudyDate,
            condition: Condition::Range {
                from: Some("20250101".into()),
                to: None,
            },
        };
        let modality = one(Attribute::ModalitiesInStudy, Pattern::Literal("CT".into()));
        let uid = one(
            Attribute::StudyInstanceUid,
            Pattern::Literal("1.2.3".into()),
        );
        let patient_id = one(Attribute::PatientId, Pattern::Literal("MRN1".into()));
        assert!(planned_each_time(Dialect::Postgres, vec![name.clone()]));
        assert!(planned_each_time(Dialect::Postgres, vec![dates]));
        assert!(planned_each_time(Dialect::Postgres, vec![modality]));
        assert!(planned_each_time(
            Dialect::Postgres,
            vec![patient_id.clone(), name.clone()]
        ));
        // Look-ups by a key are planned once and kept.
        assert!(!planned_each_time(Dialect::Postgres, vec![uid]));
        assert!(!planned_each_time(Dialect::Postgres, vec![patient_id]));
        assert!(!planned_each_time(Dialect::Postgres, vec![]));
        // SQLite plans a statement when it is prepared, with no generic plan.
        assert!(!planned_each_time(Dialect::Sqlite, vec![name]));
    }

    #[test]
    fn sqlite_study_searches_take_the_index_that_narrows_them() {
        let filter = |attribute, p: &str| Filter {
            attribute,
            condition: Condition::OneOf(vec![if p.contains(['*', '?']) {
                Pattern::Wildcard(p.into())
            } else {
                Pattern::Literal(p.into())
            }]),
        };
        let dates = Filter {
            attribute: Attribute::StudyDate,
            condition: Condition::Range {
                from: Some("20250101".into()),
                to: None,
            },
        };
        let plan = |filters| sqlite_study_plan(Dialect::Sqlite, None, &studies(filters));
        assert_eq!(
            plan(vec![
                filter(Attribute::PatientName, "*zwieb*"),
                dates.clone()
            ]),
            StudyPlan::NameIndex("\"ZWIEB\"".into())
        );
        assert_eq!(
            plan(vec![filter(Attribute::PatientName, "*o\"b?ri*en^*")]),
            StudyPlan::NameIndex(r#""O""B" AND "EN^""#.into())
        );
        assert_eq!(
            plan(vec![filter(Attribute::PatientName, "*zw*")]),
            StudyPlan::Walk
        );
        assert_eq!(plan(vec![dates.clone()]), StudyPlan::Walk);
        assert_eq!(plan(vec![]), StudyPlan::Walk);
        assert_eq!(
            plan(vec![
                filter(Attribute::PatientName, "zwieb*"),
                dates.clone()
            ]),
            StudyPlan::Plain
        );
        assert_eq!(
            plan(vec![
                filter(Attribute::PatientId, "MRN1"),
                filter(Attribute::PatientName, "*zwieb*")
            ]),
            StudyPlan::Plain
        );
        assert_eq!(
            plan(vec![filter(Attribute::PatientId, "MRN*")]),
            StudyPlan::Walk
        );
    }
}
