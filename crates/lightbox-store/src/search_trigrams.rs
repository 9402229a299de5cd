//! PostgreSQL: the worklist's description search by rare trigram (0019).
//!
//! Each study is listed in `study_search_postings` under its organization's
//! trigrams that are not common. A search whose needle holds such a trigram
//! walks the rarest one's studies newest first, checking each against the
//! whole needle and the filters, and stops after a page
//! (`studies.rs`, `postgres_trigram_walk_sql`): for a rare needle that is
//! about a page of rows read, where the trigram GIN index (0004) finds every
//! match and PostgreSQL reads and sorts them all.
//!
//! Which trigrams are common is decided only by
//! [`Store::count_search_trigrams`], run in the background: it marks them,
//! sets their bits in the organization's bitmap that writers read (0020) and
//! drops their postings in one transaction, and a trigram once common stays
//! so. A search reads the marks and the postings in one statement (one
//! snapshot), so it never walks a trigram whose postings are incomplete.

use crate::{Dialect, Store, StoreError};
use lightbox_domain::Timestamp;

/// Studies of one organization holding a trigram before it counts as common
/// (0019 uses the same number for the studies stored before it). A search
/// reads at most this many rows through one trigram (when its needle matches
/// under a page of them): ~5 µs each at 1M studies (`EXPLAIN ANALYZE`).
const COMMON_TRIGRAM_STUDIES: i64 = 2_000;

/// Trigrams of one needle looked up (its first ones; any of them serves).
const MOST_NEEDLE_TRIGRAMS: usize = 32;

/// What one [`Store::count_search_trigrams`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrigramCount {
    /// Whether it ran (false: another replica was counting, or SQLite).
    pub ran: bool,
    /// Trigrams found common in this count.
    pub marked_common: u64,
    /// Their postings, dropped.
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
    /// Counts each organization's listed trigrams, marks those held by more
    /// than [`COMMON_TRIGRAM_STUDIES`] studies common and drops their
    /// postings. One replica at a time (the others skip while it runs); a
    /// no-op on SQLite, whose search has an index of its own (0007).
    pub async fn count_search_trigrams(&self) -> Result<TrigramCount, StoreError> {
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
        sqlx::query(
            "INSERT INTO study_search_trigrams (org_id, trigram, studies) \
             SELECT org_id, trigram, count(*) FROM study_search_postings GROUP BY org_id, trigram \
             ON CONFLICT (org_id, trigram) DO UPDATE SET studies = EXCLUDED.studies \
             WHERE study_search_trigrams.common_since IS NULL \
               AND study_search_trigrams.studies <> EXCLUDED.studies",
        )
        .execute(&mut *tx)
        .await?;
        let now = Timestamp::now().millis();
        let marked_common = sqlx::query(
            "UPDATE study_search_trigrams SET common_since = $1 \
             WHERE common_since IS NULL AND studies > $2",
        )
        .bind(now)
        .bind(COMMON_TRIGRAM_STUDIES)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // What writers read to skip common trigrams (0020): rebuilt whole
        // for each organization with a new mark, as marks are only added.
        if marked_common > 0 {
            sqlx::query(
                "INSERT INTO study_search_common (org_id, trigrams) \
                 SELECT org_id, study_search_common_bits(array_agg(trigram)) \
                 FROM study_search_trigrams \
                 WHERE common_since IS NOT NULL AND org_id IN \
                   (SELECT org_id FROM study_search_trigrams WHERE common_since = $1) \
                 GROUP BY org_id \
                 ON CONFLICT (org_id) DO UPDATE SET trigrams = EXCLUDED.trigrams",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // A write that read the bitmap just before this commits may still
        // list a study under a trigram marked here: such postings are never
        // read (the trigram is common), only kept.
        let postings_dropped = sqlx::query(
            "DELETE FROM study_search_postings p USING study_search_trigrams c \
             WHERE c.org_id = p.org_id AND c.trigram = p.trigram AND c.common_since = $1",
        )
        .bind(now)
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
