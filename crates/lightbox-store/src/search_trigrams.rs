//! PostgreSQL: the worklist's description search by rare trigram (0019).
//!
//! Each study is listed in `study_search_postings` under its organization's
//! trigrams that are not (yet) common. A search whose needle holds such a
//! trigram walks that trigram's studies newest first, checking each against
//! the whole needle and the filters, and stops after a page: for a rare needle
//! that is about a page of rows read, where the trigram GIN index (0004) finds
//! every match and PostgreSQL reads and sorts them all.
//!
//! Which trigrams are common is decided only here, by
//! [`Store::count_search_trigrams`], run in the background. A trigram marked
//! common gets no postings from then on; the ones it has are dropped a while
//! later ([`DROP_AFTER`]), so a search that read it as not common a moment
//! before still walks all of them.

use crate::sql::{like_escape, Sql};
use crate::studies::STUDY_COLUMNS;
use crate::{Dialect, Store, StoreError};
use lightbox_domain::study::StudyFilter;
use lightbox_domain::{OrgId, StudyId, Timestamp};
use sqlx::Row;
use std::time::Duration;

/// Studies of one organization holding a trigram before it counts as common
/// (0019 uses the same number for the studies stored before it). A search
/// reads at most this many rows through one trigram (when its needle matches
/// under a page of them), ~4 µs each at 1M studies.
pub const COMMON_TRIGRAM_STUDIES: i64 = 2_000;

/// How long a trigram found common keeps its postings: longer than any
/// search that read it as not common can take.
pub const DROP_AFTER: Duration = Duration::from_secs(60);

/// Trigrams of one needle looked up (its first ones; any of them serves).
const MOST_NEEDLE_TRIGRAMS: usize = 32;

/// What one [`Store::count_search_trigrams`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrigramCount {
    /// Whether it ran (false: another replica was counting, or SQLite).
    pub ran: bool,
    /// Trigrams found common in this count.
    pub marked_common: u64,
    /// Postings dropped, of trigrams found common at least [`DROP_AFTER`] ago.
    pub postings_dropped: u64,
}

/// The trigrams PostgreSQL's `show_trgm` gives for every description that
/// contains `needle` (lowercased) and that 0019 lists: each three-character
/// window of its runs of ASCII letters and digits. Any other character ends
/// a run, as it may end a word in pg_trgm.
pub(crate) fn needle_trigrams(needle: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in needle.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit())) {
        for at in 0..run.len().saturating_sub(2) {
            let trigram = &run[at..at + 3];
            if !out.iter().any(|t| t == trigram) {
                out.push(trigram.to_owned());
            }
        }
    }
    out.truncate(MOST_NEEDLE_TRIGRAMS);
    out
}

impl Store {
    /// The page query for `needle` (lowercased) through its rarest trigram
    /// that is still listed, or None when it has none (the needle is short,
    /// not ASCII, or made of common trigrams only).
    pub(crate) async fn rare_trigram_walk(
        &self,
        org_id: OrgId,
        filter: &StudyFilter,
        needle: &str,
        page_rows: &str,
        after: Option<&StudyId>,
    ) -> Result<Option<Sql>, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let trigrams = needle_trigrams(needle);
        if trigrams.is_empty() {
            return Ok(None);
        }
        let mut counts = Sql::new(
            "SELECT trigram, studies, common_since IS NOT NULL AS common \
             FROM study_search_trigrams WHERE org_id = ",
        );
        counts.bind(org_id.to_string()).push(" AND trigram IN (");
        for (i, trigram) in trigrams.iter().enumerate() {
            if i > 0 {
                counts.push(", ");
            }
            counts.bind(trigram.as_str());
        }
        counts.push(")");
        let rows = counts.query().fetch_all(&self.read).await?;
        // A trigram with no row is new since the last count (a few postings)
        // or in no description at all (none): either way the rarest.
        let mut best: Option<(&str, i64)> = None;
        for trigram in &trigrams {
            let row = rows
                .iter()
                .find(|r| r.try_get::<String, _>("trigram").ok().as_deref() == Some(trigram));
            let (studies, common) = match row {
                Some(row) => (
                    row.try_get::<i64, _>("studies")?,
                    row.try_get::<bool, _>("common")?,
                ),
                None => (0, false),
            };
            if !common && best.is_none_or(|(_, fewest)| studies < fewest) {
                best = Some((trigram, studies));
            }
        }
        let Some((trigram, _)) = best else {
            return Ok(None);
        };
        // The postings come in id order from their own subquery (its ORDER BY
        // keeps PostgreSQL from merging it into the join), and each is checked
        // in a LATERAL subquery that it cannot merge either (OFFSET 0), so the
        // plan is this walk whatever the estimates: joined plainly, the
        // planner took the GIN index for the LIKE (it underestimates rare
        // needles' matches) or read every posting and sorted the matches.
        let org = org_id.to_string();
        let mut sql = Sql::new(STUDY_COLUMNS);
        sql.push(
            "(SELECT st.* FROM (SELECT study_id FROM study_search_postings \
             WHERE org_id = ",
        )
        .bind(org.as_str())
        .push(" AND trigram = ")
        .bind(trigram);
        if let Some(after) = after {
            sql.push(" AND study_id < ").bind(after.as_str());
        }
        sql.push(
            " ORDER BY study_id DESC) p CROSS JOIN LATERAL \
             (SELECT * FROM studies st WHERE st.org_id = ",
        )
        .bind(org.as_str())
        .push(" AND st.id = p.study_id");
        crate::studies::push_column_filters(&mut sql, "st.", filter, None);
        sql.push(" AND st.description_search LIKE ")
            .bind(format!("%{}%", like_escape(needle)))
            .push(" ESCAPE '\\' OFFSET 0) st ORDER BY p.study_id DESC LIMIT ")
            .push(page_rows)
            .push(") s")
            .push(crate::studies::STUDY_JOINS)
            .push(" ORDER BY s.id DESC");
        Ok(Some(sql))
    }

    /// Counts each organization's listed trigrams, marks those held by more
    /// than [`COMMON_TRIGRAM_STUDIES`] studies common, and drops the postings
    /// of trigrams marked at least [`DROP_AFTER`] ago. One replica at a time
    /// (the others skip while it runs); a no-op on SQLite, whose search has
    /// an index of its own (0007).
    pub async fn count_search_trigrams(
        &self,
        drop_after: Duration,
    ) -> Result<TrigramCount, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(TrigramCount::default());
        }
        let mut tx = self.write.begin().await?;
        let ours: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('lightbox.study_search_trigrams'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        if !ours {
            return Ok(TrigramCount::default());
        }
        let now = Timestamp::now().millis();
        let cutoff = now - i64::try_from(drop_after.as_millis()).unwrap_or(i64::MAX);
        let postings_dropped = sqlx::query(
            "DELETE FROM study_search_postings p USING study_search_trigrams c \
             WHERE c.org_id = p.org_id AND c.trigram = p.trigram \
               AND c.common_since <= $1 AND NOT c.dropped",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE study_search_trigrams SET dropped = TRUE WHERE common_since <= $1 AND NOT dropped",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO study_search_trigrams (org_id, trigram, studies) \
             SELECT org_id, trigram, count(*) FROM study_search_postings GROUP BY org_id, trigram \
             ON CONFLICT (org_id, trigram) DO UPDATE SET studies = EXCLUDED.studies \
             WHERE study_search_trigrams.common_since IS NULL \
               AND study_search_trigrams.studies <> EXCLUDED.studies",
        )
        .execute(&mut *tx)
        .await?;
        let marked_common = sqlx::query(
            "UPDATE study_search_trigrams SET common_since = $1 \
             WHERE common_since IS NULL AND studies > $2",
        )
        .bind(now)
        .bind(COMMON_TRIGRAM_STUDIES)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(TrigramCount {
            ran: true,
            marked_common,
            postings_dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::needle_trigrams;

    #[test]
    fn needle_trigrams_are_the_windows_of_its_ascii_runs() {
        assert_eq!(needle_trigrams("arthro"), ["art", "rth", "thr", "hro"]);
        assert_eq!(needle_trigrams("l knee-mri"), ["kne", "nee", "mri"]);
        assert_eq!(needle_trigrams("ct"), Vec::<String>::new());
        assert_eq!(needle_trigrams("ééé épaule"), ["pau", "aul", "ule"]);
        assert_eq!(needle_trigrams("aaaa"), ["aaa"]);
        assert_eq!(needle_trigrams("a_b%c"), Vec::<String>::new());
        let long = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(3);
        assert_eq!(needle_trigrams(&long).len(), 32);
    }
}
