//! Viewer studies.

use crate::outbox::{enqueue, study_facts};
use crate::search_trigrams::needle_trigrams;
use crate::sql::{like_escape, Sql};
use crate::users::{paginate, user_ref, Page};
use crate::{flag, Dialect, Store, StoreError};
use lightbox_domain::study::{
    Actor, ApiKeyRef, Metadata, NewStudy, RefFilter, Severity, Study, StudyFilter, StudyPatch,
    StudySelector, ViewerStatus,
};
use lightbox_domain::webhook::{study_change_events, EventType, StudyEventData, StudyFacts};
use lightbox_domain::{ApiKeyId, Error, OrgId, StudyId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::time::Instant;

/// A study's columns with its assignee, creating user and API key; followed
/// by what to read studies from (aliased `s`) and then [`STUDY_JOINS`].
const STUDY_COLUMNS: &str = "SELECT s.id, s.study_instance_uid, s.description, s.severity, s.viewer_status, \
     s.is_cancelled, s.cancelled_at, s.express_customer_id, s.metadata, s.created_at, s.updated_at, \
     a.id AS a_id, a.email AS a_email, a.first_name AS a_first_name, a.last_name AS a_last_name, \
     a.middle_name AS a_middle_name, a.suffix1 AS a_suffix1, a.suffix2 AS a_suffix2, \
     c.id AS c_id, c.email AS c_email, c.first_name AS c_first_name, c.last_name AS c_last_name, \
     c.middle_name AS c_middle_name, c.suffix1 AS c_suffix1, c.suffix2 AS c_suffix2, \
     k.id AS k_id, k.description AS k_description \
     FROM ";

const STUDY_JOINS: &str = " LEFT JOIN users a ON a.org_id = s.org_id AND a.id = s.assigned_to \
     LEFT JOIN users c ON c.org_id = s.org_id AND c.id = s.created_by_user_id \
     LEFT JOIN api_keys k ON k.id = s.created_by_api_key_id";

fn study_select(condition: &str) -> String {
    format!("{STUDY_COLUMNS}studies s{STUDY_JOINS} WHERE {condition}")
}

fn study_from_row(row: &AnyRow) -> Result<Study, StoreError> {
    let corrupt = |e: Error| StoreError::Corrupt(e.to_string());
    let metadata: String = row.try_get("metadata")?;
    let created_by_api_key = match row.try_get::<Option<String>, _>("k_id")? {
        Some(id) => Some(ApiKeyRef {
            id: ApiKeyId::parse(&id).map_err(corrupt)?,
            description: row.try_get("k_description")?,
        }),
        None => None,
    };
    Ok(Study {
        id: StudyId::from_trusted(row.try_get("id")?),
        study_instance_uid: row.try_get("study_instance_uid")?,
        description: row.try_get("description")?,
        severity: Severity::parse(row.try_get("severity")?).map_err(corrupt)?,
        viewer_status: ViewerStatus::parse(row.try_get("viewer_status")?).map_err(corrupt)?,
        is_cancelled: flag(row, "is_cancelled")?,
        cancelled_at: row
            .try_get::<Option<i64>, _>("cancelled_at")?
            .map(Timestamp::from_millis),
        assigned_to: user_ref(row, "a_")?,
        express_customer_id: row.try_get("express_customer_id")?,
        created_by_api_key,
        created_by_user: user_ref(row, "c_")?,
        metadata: serde_json::from_str(&metadata)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

fn metadata_json(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).expect("a string map always serialises")
}

fn not_found(id: &StudyId) -> Error {
    Error::NotFound(format!("study {id} not found"))
}

impl Store {
    pub async fn create_study(
        &self,
        org_id: OrgId,
        actor: &Actor,
        new: &NewStudy,
    ) -> Result<Study, Error> {
        new.validate()?;
        if let Some(assignee) = &new.assigned_to {
            self.assignable_user(org_id, assignee).await?;
        }
        let (api_key, user) = match actor {
            Actor::ApiKey(id) => (Some(id.to_string()), None),
            Actor::User(id) => (None, Some(id.as_str().to_owned())),
        };
        let id = StudyId::generate();
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let insert = "INSERT INTO studies (org_id, id, study_instance_uid, description, description_search, severity, \
             viewer_status, is_cancelled, assigned_to, express_customer_id, created_by_api_key_id, \
             created_by_user_id, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)";
        // PostgreSQL answers with the new study, joined as a read would be, in
        // the insert's own statement: a statement and a round trip fewer per
        // create. SQLite has no INSERT inside WITH; there the study is read
        // once committed.
        let statement = if self.dialect == Dialect::Postgres {
            format!("WITH s AS ({insert} RETURNING *) {STUDY_COLUMNS}s{STUDY_JOINS}")
        } else {
            insert.to_owned()
        };
        let inserted = sqlx::query(&statement)
            .bind(org_id.to_string())
            .bind(id.as_str())
            .bind(&new.study_instance_uid)
            .bind(&new.description)
            .bind(new.description.to_lowercase())
            .bind(new.severity.as_str())
            .bind(ViewerStatus::Incomplete.as_str())
            .bind(false)
            .bind(new.assigned_to.as_ref().map(|u| u.as_str().to_owned()))
            .bind(new.express_customer_id.clone())
            .bind(api_key)
            .bind(user)
            .bind(metadata_json(&new.metadata))
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from);
        let row = match inserted {
            Ok(row) => row,
            Err(e) if e.is_unique_violation() => {
                return Err(Error::Conflict(format!(
                    "a study with Study Instance UID {} already exists in this organization",
                    new.study_instance_uid
                )))
            }
            Err(e) if e.is_foreign_key_violation() => {
                return Err(Error::Unprocessable(
                    "assignedTo does not name a user of this organization".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let created = StudyFacts {
            id: id.clone(),
            study_instance_uid: new.study_instance_uid.clone(),
            description: new.description.clone(),
            severity: new.severity,
            viewer_status: ViewerStatus::Incomplete,
            is_cancelled: false,
            assigned_to: new.assigned_to.as_ref().map(|u| u.to_string()),
            express_customer_id: new.express_customer_id.clone(),
            created_by_api_key_id: match actor {
                Actor::ApiKey(key) => Some(*key),
                Actor::User(_) => None,
            },
        };
        let event = StudyEventData::of(&created, now);
        let queued = enqueue(
            &mut tx,
            org_id,
            created.created_by_api_key_id,
            &[(EventType::StudyCreated, event)],
        )
        .await?;
        self.commit_with_events(tx, queued).await?;
        self.study_changed(org_id, &id);
        match row {
            Some(row) => Ok(study_from_row(&row)?),
            None => self.study(org_id, &id).await?.ok_or_else(|| not_found(&id)),
        }
    }

    pub async fn study(&self, org_id: OrgId, id: &StudyId) -> Result<Option<Study>, StoreError> {
        let row = sqlx::query(&study_select("s.org_id = $1 AND s.id = $2"))
            .bind(org_id.to_string())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(study_from_row).transpose()
    }

    pub async fn study_by_uid(
        &self,
        org_id: OrgId,
        uid: &str,
    ) -> Result<Option<Study>, StoreError> {
        let row = sqlx::query(&study_select("s.org_id = $1 AND s.study_instance_uid = $2"))
            .bind(org_id.to_string())
            .bind(uid)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(study_from_row).transpose()
    }

    /// Finds the study a cancel/uncancel/reroute request names.
    pub async fn select_study(
        &self,
        org_id: OrgId,
        selector: &StudySelector,
    ) -> Result<Study, Error> {
        match selector {
            StudySelector::Id(id) => self.study(org_id, id).await?.ok_or_else(|| not_found(id)),
            StudySelector::Uid(uid) => self
                .study_by_uid(org_id, uid)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no study with Study Instance UID {uid}"))),
            StudySelector::Both(id, uid) => {
                let study = self.study(org_id, id).await?.ok_or_else(|| not_found(id))?;
                if &study.study_instance_uid != uid {
                    return Err(Error::bad_request(format!(
                        "studyId {id} and studyInstanceUid {uid} name different studies"
                    )));
                }
                Ok(study)
            }
        }
    }

    pub async fn update_study(
        &self,
        org_id: OrgId,
        id: &StudyId,
        patch: &StudyPatch,
    ) -> Result<Study, Error> {
        patch.validate()?;
        if let Some(Some(assignee)) = &patch.assigned_to {
            self.assignable_user(org_id, assignee).await?;
        }
        if !patch.is_empty() {
            let now = Timestamp::now();
            let mut tx = self.begin_write().await?;
            let before = study_facts(self.dialect, &mut tx, org_id, id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let mut sql = Sql::new("UPDATE studies SET updated_at = ");
            sql.bind(now.millis());
            if let Some(description) = &patch.description {
                sql.push(", description = ").bind(description.as_str());
                sql.push(", description_search = ")
                    .bind(description.to_lowercase());
            }
            if let Some(severity) = patch.severity {
                sql.push(", severity = ").bind(severity.as_str());
            }
            if let Some(status) = patch.viewer_status {
                sql.push(", viewer_status = ").bind(status.as_str());
            }
            if let Some(assignee) = &patch.assigned_to {
                sql.push(", assigned_to = ")
                    .bind(assignee.as_ref().map(|u| u.as_str().to_owned()));
            }
            if let Some(metadata) = &patch.metadata {
                let empty = Metadata::new();
                sql.push(", metadata = ")
                    .bind(metadata_json(metadata.as_ref().unwrap_or(&empty)));
            }
            sql.push(" WHERE org_id = ").bind(org_id.to_string());
            sql.push(" AND id = ").bind(id.as_str());
            let done = sql
                .query()
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from);
            match done {
                Ok(r) if r.rows_affected() == 0 => return Err(not_found(id)),
                Ok(_) => {}
                Err(e) if e.is_foreign_key_violation() => {
                    return Err(Error::Unprocessable(
                        "assignedTo does not name a user of this organization".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
            let after = study_facts(self.dialect, &mut tx, org_id, id)
                .await?
                .ok_or_else(|| not_found(id))?;
            // Setting a field to the value it has is no change to report.
            let queued = if before == after && patch.metadata.is_none() {
                0
            } else {
                let events = study_change_events(&before, &after, now);
                enqueue(&mut tx, org_id, after.created_by_api_key_id, &events).await?
            };
            self.commit_with_events(tx, queued).await?;
            self.study_changed(org_id, id);
        }
        self.study(org_id, id).await?.ok_or_else(|| not_found(id))
    }

    /// Cancels (or uncancels) the study; a study already in that state is a conflict.
    pub async fn set_cancelled(
        &self,
        org_id: OrgId,
        selector: &StudySelector,
        cancel: bool,
    ) -> Result<Study, Error> {
        let study = self.select_study(org_id, selector).await?;
        let at = Timestamp::now();
        let now = at.millis();
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE studies SET is_cancelled = $1, cancelled_at = $2, updated_at = $3 \
             WHERE org_id = $4 AND id = $5 AND is_cancelled = $6",
        )
        .bind(cancel)
        .bind(cancel.then_some(now))
        .bind(now)
        .bind(org_id.to_string())
        .bind(study.id.as_str())
        .bind(!cancel)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if result.rows_affected() == 0 {
            let state = if cancel {
                "already cancelled"
            } else {
                "not cancelled"
            };
            return Err(Error::Conflict(format!("study {} is {state}", study.id)));
        }
        let mut before = StudyFacts::from(&study);
        before.is_cancelled = !cancel;
        let mut after = before.clone();
        after.is_cancelled = cancel;
        let events = study_change_events(&before, &after, at);
        let queued = enqueue(&mut tx, org_id, after.created_by_api_key_id, &events).await?;
        self.commit_with_events(tx, queued).await?;
        self.study_changed(org_id, &study.id);
        self.study(org_id, &study.id)
            .await?
            .ok_or_else(|| not_found(&study.id))
    }

    /// Lists studies newest first, `limit` at a time, continuing after `after`.
    pub async fn list_studies(
        &self,
        org_id: OrgId,
        filter: &StudyFilter,
        limit: u32,
        after: Option<&StudyId>,
    ) -> Result<Page<Study, StudyId>, StoreError> {
        let studies = match self.list_studies_sql(org_id, filter, limit, after).await? {
            ListQuery::Page(sql) => {
                let rows = sql.query().fetch_all(&self.read).await?;
                rows.iter()
                    .map(study_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
            ListQuery::MatchesNewestFirst(sql) => self.newest_matches(&sql, limit).await?,
            ListQuery::RareTrigramWalk { sql, needle } => {
                let rows = sql.query().fetch_all(&self.read).await?;
                if rows.is_empty() {
                    // Every trigram of the needle is common, for good.
                    self.needle_plans
                        .put(&common_needle_key(org_id, &needle), false);
                    return Box::pin(self.list_studies(org_id, filter, limit, after)).await;
                }
                // No match: the one row the walk's LEFT JOIN left empty.
                rows.iter()
                    .filter(|row| matches!(row.try_get::<Option<String>, _>(0), Ok(Some(_))))
                    .map(study_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(paginate(studies, limit, |s| s.id.clone()))
    }

    /// The page (and one more study) from a [`ListQuery::MatchesNewestFirst`]
    /// query: its rows come in search-key order, which is id order but within
    /// one id prefix (see [`search_prefix`]), so it reads on while the prefix
    /// of the page's last row lasts and sorts what it read.
    async fn newest_matches(&self, sql: &Sql, limit: u32) -> Result<Vec<Study>, StoreError> {
        use futures_util::TryStreamExt;
        let wanted = limit as usize + 1;
        let mut studies: Vec<Study> = Vec::with_capacity(wanted + 8);
        let mut rows = sql.query().fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            let study = study_from_row(&row)?;
            if studies.len() >= wanted
                && search_prefix(&study.id) < search_prefix(&studies[wanted - 1].id)
            {
                break;
            }
            studies.push(study);
        }
        studies.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        studies.truncate(wanted);
        Ok(studies)
    }

    /// The database's plan for the query [`Store::list_studies`] would run, one
    /// line per plan step (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL).
    pub async fn explain_list_studies(
        &self,
        org_id: OrgId,
        filter: &StudyFilter,
        limit: u32,
        after: Option<&StudyId>,
    ) -> Result<Vec<String>, StoreError> {
        let sql = self.list_studies_sql(org_id, filter, limit, after).await?;
        let sql = match &sql {
            ListQuery::Page(sql)
            | ListQuery::MatchesNewestFirst(sql)
            | ListQuery::RareTrigramWalk { sql, .. } => sql,
        };
        let explain = match self.dialect {
            Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
            Dialect::Postgres => "EXPLAIN ",
        };
        let mut explained = Sql::new(explain);
        explained.append(sql);
        let rows = explained.query().fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| match self.dialect {
                Dialect::Sqlite => row.try_get::<String, _>("detail"),
                Dialect::Postgres => row.try_get::<String, _>(0),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)
    }

    async fn list_studies_sql(
        &self,
        org_id: OrgId,
        filter: &StudyFilter,
        limit: u32,
        after: Option<&StudyId>,
    ) -> Result<ListQuery, StoreError> {
        let needle = filter
            .description_contains
            .as_deref()
            .map(str::to_lowercase);
        if let Some(needle) = &needle {
            if self.sqlite_description_index_pays(needle).await? {
                return Ok(ListQuery::MatchesNewestFirst(sqlite_matches_sql(
                    org_id, filter, needle, after,
                )));
            }
        }
        // One extra row tells whether another page follows (see `paginate`).
        // Written into the text, not bound: with the limit a parameter,
        // PostgreSQL never judged a generic plan cheaper and planned every
        // call anew (0.5 of a first page's 1.4 ms).
        let page_rows = (u64::from(limit) + 1).to_string();
        if let Some(needle) = needle
            .as_ref()
            .filter(|_| self.dialect == Dialect::Postgres)
        {
            let trigrams = needle_trigrams(needle);
            if !trigrams.is_empty()
                && self
                    .needle_plans
                    .get(&common_needle_key(org_id, needle))
                    .is_none()
            {
                return Ok(ListQuery::RareTrigramWalk {
                    sql: postgres_trigram_walk_sql(
                        org_id, filter, needle, &trigrams, &page_rows, after,
                    ),
                    needle: needle.clone(),
                });
            }
        }
        // The page is chosen from `studies` alone (as `st`), and only its rows are
        // joined to their users and key: joined first, every match of a
        // filter was (PostgreSQL: 958 rows for a rare needle, 6 of its 8 ms).
        let mut sql = Sql::new(STUDY_COLUMNS);
        sql.push("(SELECT * FROM studies st WHERE st.org_id = ")
            .bind(org_id.to_string());
        let column_filters = [
            filter.assigned_to.is_some(),
            filter.express_customer_id.is_some(),
            filter.is_cancelled.is_some(),
            filter.severity.is_some(),
            filter.viewer_status.is_some(),
        ]
        .into_iter()
        .filter(|&named| named)
        .count();
        if column_filters >= 2 && needle.is_none() {
            // A scan of one filter's index reads the row of every entry it
            // visits (SQLite, for a WITHOUT ROWID table) or fetches it from the
            // heap (PostgreSQL), even when a second filter then rejects it: tens
            // of thousands of reads for a rare combination. The filter indexes
            // (0004) carry the small filter columns, so the page's ids come from
            // one index alone and only a page of rows is read. A single filter
            // rejects nothing its own index yields, so there the index is walked
            // directly: the page's ids looked up again by primary key cost
            // PostgreSQL 0.6 instead of 0.35 ms a page (BENCHMARKS.md).
            sql.push(" AND st.id IN (SELECT id FROM studies WHERE org_id = ")
                .bind(org_id.to_string());
            push_column_filters(&mut sql, "", filter, after);
            sql.push(" ORDER BY id DESC LIMIT ")
                .push(&page_rows)
                .push(")");
        } else {
            push_column_filters(&mut sql, "st.", filter, after);
        }
        if let Some(needle) = &needle {
            // PostgreSQL's planner picks between the trigram GIN index (0004) and
            // the keyset walk from the LIKE alone, for each needle anew (a plan
            // kept for all needles suits either the rare or the common ones).
            // On SQLite this is the walk; the index path is `sqlite_matches_sql`.
            if self.dialect == Dialect::Postgres {
                sql.plan_each_time();
            }
            push_description_contains(&mut sql, "st.", needle);
        }
        sql.push(" ORDER BY st.id DESC LIMIT ")
            .push(&page_rows)
            .push(") s")
            .push(STUDY_JOINS)
            .push(" ORDER BY s.id DESC");
        Ok(ListQuery::Page(sql))
    }

    /// On SQLite, whether the trigram index (0004, 0007) should find the
    /// matches for `needle` (lowercased). It cannot for needles under three
    /// characters. It stops after a page of matches that pass the filters, but
    /// when other organizations' studies or the filters reject most of them it
    /// looks them all up, so it is taken only while they are few; a needle
    /// matching many rows is found as fast by walking the organization's studies
    /// newest first and checking LIKE.
    async fn sqlite_description_index_pays(&self, needle: &str) -> Result<bool, StoreError> {
        if self.dialect != Dialect::Sqlite || needle.chars().count() < 3 {
            return Ok(false);
        }
        if let Some(pays) = self.needle_plans.get(needle) {
            return Ok(pays);
        }
        let matches: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM studies_search \
             WHERE description_search MATCH $1 LIMIT $2)",
        )
        .bind(fts5_phrase(needle))
        .bind(SQLITE_INDEX_MATCH_CAP)
        .fetch_one(&self.read)
        .await?;
        let pays = matches < SQLITE_INDEX_MATCH_CAP;
        self.needle_plans.put(needle, pays);
        Ok(pays)
    }
}

/// Recent answers of `sqlite_description_index_pays`, so paging through a
/// search or repeating it does not count its matches again (~15 % of a rare
/// needle's time). Only the choice of plan depends on them: a stale answer
/// costs time, never a wrong result.
#[derive(Default)]
pub(crate) struct NeedlePlans(std::sync::Mutex<std::collections::HashMap<String, (bool, Instant)>>);

const NEEDLE_PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const NEEDLE_PLANS_MAX: usize = 4096;

impl NeedlePlans {
    fn get(&self, needle: &str) -> Option<bool> {
        let plans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .get(needle)
            .filter(|(_, at)| at.elapsed() < NEEDLE_PLAN_TTL)
            .map(|(pays, _)| *pays)
    }

    fn put(&self, needle: &str, pays: bool) {
        let mut plans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if plans.len() >= NEEDLE_PLANS_MAX {
            plans.retain(|_, (_, at)| at.elapsed() < NEEDLE_PLAN_TTL);
            if plans.len() >= NEEDLE_PLANS_MAX {
                plans.clear();
            }
        }
        plans.insert(needle.to_owned(), (pays, Instant::now()));
    }
}

/// The WHERE terms for the column filters (and the cursor), on columns named
/// with `prefix`.
fn push_column_filters(sql: &mut Sql, prefix: &str, filter: &StudyFilter, after: Option<&StudyId>) {
    let p = prefix;
    if let Some(after) = after {
        sql.push(&format!(" AND {p}id < ")).bind(after.as_str());
    }
    match &filter.assigned_to {
        Some(RefFilter::Is(user)) => {
            sql.push(&format!(" AND {p}assigned_to = "))
                .bind(user.as_str());
        }
        Some(RefFilter::IsNull) => {
            sql.push(&format!(" AND {p}assigned_to IS NULL"));
        }
        None => {}
    }
    match &filter.express_customer_id {
        Some(RefFilter::Is(customer)) => {
            sql.push(&format!(" AND {p}express_customer_id = "))
                .bind(customer.as_str());
        }
        Some(RefFilter::IsNull) => {
            sql.push(&format!(" AND {p}express_customer_id IS NULL"));
        }
        None => {}
    }
    if let Some(cancelled) = filter.is_cancelled {
        sql.push(&format!(" AND {p}is_cancelled = "))
            .bind(cancelled);
    }
    if let Some(severity) = filter.severity {
        sql.push(&format!(" AND {p}severity = "))
            .bind(severity.as_str());
    }
    if let Some(status) = filter.viewer_status {
        sql.push(&format!(" AND {p}viewer_status = "))
            .bind(status.as_str());
    }
}

/// A study listing's query, and how its rows are to be read.
enum ListQuery {
    /// Returns the page and one more row, newest first.
    Page(Sql),
    /// Returns every match in search-key order; read by `Store::newest_matches`.
    MatchesNewestFirst(Sql),
    /// PostgreSQL: returns the page and one more row newest first, or one row
    /// of NULLs when nothing matches, or no row at all when every trigram of
    /// `needle` is common (then the listing is made again without it).
    RareTrigramWalk { sql: Sql, needle: String },
}

/// The key under which `NeedlePlans` remembers that every trigram of
/// `needle` is common in `org_id` (PostgreSQL). Trigrams never become listed
/// again, so the answer stays true; it is kept only for a while all the same,
/// like every answer there.
fn common_needle_key(org_id: OrgId, needle: &str) -> String {
    format!("{org_id}/{needle}")
}

/// On SQLite, the studies matching `needle` (three characters or more) and
/// `filter`, newest first as the trigram index holds them (0007), from
/// before `after`. Each row is checked with LIKE as well: FTS5 folds case
/// its own way, so it may match more than "lowercased description contains".
fn sqlite_matches_sql(
    org_id: OrgId,
    filter: &StudyFilter,
    needle: &str,
    after: Option<&StudyId>,
) -> Sql {
    let mut sql = Sql::new(STUDY_COLUMNS);
    sql.push(
        "studies_search f JOIN studies_search_keys sk ON sk.search_id = f.rowid \
         JOIN studies s ON s.org_id = sk.org_id AND s.id = sk.study_id",
    )
    .push(STUDY_JOINS)
    .push(" WHERE f.description_search MATCH ")
    .bind(fts5_phrase(needle))
    .push(" AND sk.org_id = ")
    .bind(org_id.to_string());
    if let Some(after) = after {
        // Keys of the cursor's prefix may belong to older ids, so they stay in.
        if let Ok(below) = i64::try_from((search_prefix(after) + 1) << SEARCH_SEQUENCE_BITS) {
            sql.push(" AND f.rowid < ").bind(below);
        }
    }
    push_column_filters(&mut sql, "s.", filter, after);
    push_description_contains(&mut sql, "s.", needle);
    sql.push(" ORDER BY f.rowid DESC");
    sql
}

/// On PostgreSQL, the page of studies matching `needle` and `filter` from
/// before `after`, found by walking the studies listed under the rarest of
/// `trigrams` (the needle's, see `needle_trigrams`) that is not common
/// (0019, `search_trigrams.rs`), newest first. One statement reads which
/// trigrams are common and walks the postings, in one snapshot: the count
/// marks a trigram common and drops its postings in one transaction.
///
/// The postings come in id order from their own subquery (its ORDER BY keeps
/// PostgreSQL from merging it into the join) and each is checked in a
/// LATERAL subquery it cannot merge either (OFFSET 0), so the plan is this
/// walk whatever the estimates: joined plainly, the planner took the GIN
/// index for the LIKE (it underestimates a rare needle's matches) or read
/// every posting and sorted the matches. A trigram without a row is new
/// since the last count or in no description: the rarest either way.
fn postgres_trigram_walk_sql(
    org_id: OrgId,
    filter: &StudyFilter,
    needle: &str,
    trigrams: &[String],
    page_rows: &str,
    after: Option<&StudyId>,
) -> Sql {
    let org = org_id.to_string();
    let mut sql = Sql::new(STUDY_COLUMNS);
    sql.push("(SELECT w.* FROM (SELECT v.trigram FROM (VALUES ");
    for (i, trigram) in trigrams.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" })
            .bind(trigram.as_str())
            .push(")");
    }
    sql.push(
        ") v (trigram) LEFT JOIN study_search_trigrams c \
         ON c.org_id = ",
    )
    .bind(org.as_str())
    .push(
        " AND c.trigram = v.trigram WHERE c.common_since IS NULL \
         ORDER BY coalesce(c.studies, 0) LIMIT 1) pick \
         LEFT JOIN LATERAL (SELECT st.* FROM (SELECT study_id FROM study_search_postings \
         WHERE org_id = ",
    )
    .bind(org.as_str())
    .push(" AND trigram = pick.trigram");
    if let Some(after) = after {
        sql.push(" AND study_id < ").bind(after.as_str());
    }
    sql.push(
        " ORDER BY study_id DESC) p CROSS JOIN LATERAL \
         (SELECT * FROM studies st WHERE st.org_id = ",
    )
    .bind(org.as_str())
    .push(" AND st.id = p.study_id");
    push_column_filters(&mut sql, "st.", filter, None);
    push_description_contains(&mut sql, "st.", needle);
    sql.push(" OFFSET 0) st ORDER BY p.study_id DESC LIMIT ")
        .push(page_rows)
        .push(") w ON TRUE) s")
        .push(STUDY_JOINS)
        .push(" ORDER BY s.id DESC");
    sql
}

/// The WHERE term for "lowercased description contains `needle`" (lowercased),
/// on the columns named with `prefix`.
fn push_description_contains(sql: &mut Sql, prefix: &str, needle: &str) {
    sql.push(&format!(" AND {prefix}description_search LIKE "))
        .bind(format!("%{}%", like_escape(needle)))
        .push(" ESCAPE '\\'");
}

/// Bits of a SQLite search key (0007) below the id prefix.
const SEARCH_SEQUENCE_BITS: u32 = 15;

/// A study id's first 48 bits (its UUIDv7 millisecond), as the SQLite view
/// `study_search_prefixes` (0007) computes them: search keys are ordered by it.
fn search_prefix(id: &StudyId) -> u64 {
    let hex = &id.as_str()["stu_".len().."stu_".len() + 12];
    u64::from_str_radix(hex, 16).expect("a study id is hexadecimal")
}

/// Matches counted (in the whole database) before a needle counts as common.
/// Measured at 1M studies: the index path costs ~3 µs per match it looks up,
/// the keyset walk ~0.36 µs per row and walks 100 × rows / matches rows for a
/// page; for a needle whose matches all pass, they cross near 3,000 matches,
/// and either stays near 10 ms there even when (index) every match is looked up.
const SQLITE_INDEX_MATCH_CAP: i64 = 3_000;

/// `needle` as one FTS5 string: with the trigram tokenizer, a phrase of its
/// trigrams, i.e. a substring match.
fn fts5_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needle_plans_remember_answers_within_a_bound() {
        let plans = NeedlePlans::default();
        assert_eq!(plans.get("knee"), None);
        plans.put("knee", false);
        plans.put("arthrogram", true);
        assert_eq!(plans.get("knee"), Some(false));
        assert_eq!(plans.get("arthrogram"), Some(true));
        for n in 0..NEEDLE_PLANS_MAX + 10 {
            plans.put(&format!("needle {n}"), true);
        }
        let held = plans.0.lock().unwrap().len();
        assert!(held <= NEEDLE_PLANS_MAX, "{held} answers held");
    }
}
