//! `impressions::read`'s parts: the query it runs through its cursor and
//! the `Reader` that turns each row into a `LoggedRequest`, counting what
//! the read holds against its budget.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiHeapTupleData;
use pgrx::PgSqlErrorCode;

use crate::pg::errors::PgError;

use super::cursor::{after, beyond, requests_oid, Cursor, Seen, ISO_UTC};
use crate::store::relation::Budget;
use pg_ecom_core::head::behaviour_index;
use pg_ecom_core::head::usable_feature;

/// A logged request and its impressions that fall in a read window.
pub struct LoggedRequest {
    pub id: i64,
    pub context: String,
    pub items: Vec<Option<String>>,
    pub features: Vec<f32>,
    pub k: usize,
    pub behaviour: usize,
    pub shown: Vec<LoggedShown>,
}

pub struct LoggedShown {
    pub item_index: i32,
    pub rank: i32,
    pub propensity: f64,
    pub label: bool,
}

/// Which requests to read.
pub struct Window {
    /// served at or after this time
    pub since: Option<TimestampWithTimeZone>,
    /// served after this cursor
    pub after: Option<Cursor>,
    /// the label of this behaviour (None: each impression's own)
    pub reward: Option<usize>,
    /// at most this many impressions, whole requests only
    pub limit: i64,
    /// the oldest first (ecom_learn continuing from a cursor: a backlog is
    /// worked off in order) or the most recent
    pub oldest_first: bool,
}

/// What `read` found.
pub struct Read {
    /// in the order served
    pub requests: Vec<LoggedRequest>,
    /// the limit stopped the read before the window's end
    pub truncated: bool,
    /// requests read but left out: an unknown behaviour, or side features
    /// that are NULL, NaN or infinite (rows written into the tables
    /// directly, before the constraints of 0.4.0 refused them)
    pub skipped: usize,
    /// what the read could see (None when it read nothing)
    pub seen: Option<Seen>,
    /// the position (served_at, id) of the last request read beyond the
    /// cursor's position
    pub last_beyond: Option<(String, i64)>,
}

/// The query `read` runs through its cursor, parameters as `read` binds
/// them.
///
/// Every lookup goes by key or by an index range no wider than what is
/// new: requests beyond the cursor's position by (tenant, served_at), with
/// the limit applied in that index's order; requests its read did not see
/// by (tenant, txid) from the snapshot's xmin; each request's impressions
/// by request_id and each impression's label by feedback's primary key.
/// Joins planned from statistics read more than is new: nested loops sized
/// for a tenant the statistics estimate at one row re-read its log per
/// row, hash joins read all of it once per call, and a tenant's log only
/// grows (test/t/016_stale_statistics.sh, benches/loop/learn_history.sh).
pub(super) fn read_sql(w: &Window, distributed: bool) -> String {
    let dir = if w.oldest_first { "ASC" } else { "DESC" };
    let p = ["$3", "$4", "$8", "$9", "$10"];
    let (after, beyond) = (after(p), beyond(p[0], p[1]));
    let window = "r.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
              AND r.served_at OPERATOR(pg_catalog.<=) $2::pg_catalog.text::pg_catalog.timestamptz
              AND ($5::pg_catalog.timestamptz IS NULL OR r.served_at OPERATOR(pg_catalog.>=) $5::pg_catalog.timestamptz)";
    // impressions and feedback are found by the keys they share with the
    // row that names them (request_id, impression_id), the tenant checked
    // but not looked up by: a tenant given as a constant made the
    // (tenant, ...) indexes look as good as those keys to statistics that
    // estimate the tenant at one row, and without statistics the planner
    // ANDed a scan of all the tenant's impressions into every lookup
    // (IS NOT DISTINCT FROM is no index condition; tenants are NOT NULL).
    // Under Citus every table must name the tenant as a constant, or it
    // cannot send the whole query to the tenant's shard (it refuses the
    // correlated lookups): there the shard's statistics choose, and
    // ANALYZE of the shards keeps them right
    let (imp_tenant, fb_tenant) = if distributed {
        (
            "i.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            "$1::pg_catalog.text",
        )
    } else {
        ("i.tenant IS NOT DISTINCT FROM r.tenant", "i.tenant")
    };
    let columns =
        "r.id, r.tenant, r.served_at, r.txid, r.context, r.items, r.features, r.k, r.behaviour";
    // Each arm only where the window has what it needs, its bound stated
    // outright (not behind "$n IS NULL OR"), so that a generic plan bounds
    // its index scan too. Requests beyond the cursor's position were
    // served at or after it; the limit is taken in (tenant, served_at)
    // order.
    let from_position = match &w.after {
        Some(_) => {
            "AND r.served_at OPERATOR(pg_catalog.>=) $3::pg_catalog.text::pg_catalog.timestamptz"
        }
        None => "",
    };
    let beyond_arm = format!(
        "(SELECT {columns} FROM ecom.requests r
             WHERE {window} AND {beyond} {from_position}
             ORDER BY r.served_at {dir}, r.id {dir}
             LIMIT $6::pg_catalog.int8)"
    );
    // Requests at or before the position that its read did not see
    // (transactions still open then) are read whole, first (they come
    // first in time): the limit cuts only among those beyond it, so the
    // position the next cursor keeps never moves back. Their txid is at or
    // after the snapshot's xmin; the order makes (tenant, txid) the index
    // of choice where statistics cost every index of the tenant alike.
    let arms = match w.after.as_ref().and_then(|a| a.seen.as_ref()) {
        Some(_) => format!(
            "(SELECT {columns} FROM ecom.requests r
             WHERE {window}
               AND r.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($8::pg_catalog.text::pg_catalog.pg_snapshot)
               AND {after} AND NOT {beyond}
             ORDER BY r.txid)
           UNION ALL
           {beyond_arm}"
        ),
        None => beyond_arm,
    };
    format!(
        "WITH q AS ({arms})
         SELECT r.id, pg_catalog.to_char(r.served_at AT TIME ZONE 'UTC', {ISO_UTC}),
                r.context, r.items, r.features, r.k, r.behaviour,
                s.item_index, s.rank, s.propensity, s.label,
                pg_catalog.pg_current_snapshot()::pg_catalog.text,
                pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text,
                {beyond},
                COALESCE(r.txid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned(), false)
           FROM q r
          CROSS JOIN LATERAL (
             SELECT pg_catalog.array_agg(i.item_index ORDER BY i.rank) AS item_index,
                    pg_catalog.array_agg(i.rank ORDER BY i.rank) AS rank,
                    pg_catalog.array_agg(i.propensity ORDER BY i.rank) AS propensity,
                    pg_catalog.array_agg(COALESCE(
                      (SELECT f.label FROM ecom.feedback f
                        WHERE f.impression_id OPERATOR(pg_catalog.=) i.id
                          AND f.tenant OPERATOR(pg_catalog.=) {fb_tenant}
                          AND f.behaviour OPERATOR(pg_catalog.=) COALESCE($7::pg_catalog.text, i.behaviour)),
                      false) ORDER BY i.rank) AS label
               FROM ecom.impressions i
              WHERE i.request_id OPERATOR(pg_catalog.=) r.id AND {imp_tenant}
             -- a request without impressions gives no row, as an inner
             -- join did (it still counts toward the limit)
             HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0) s
          ORDER BY r.served_at {dir}, r.id {dir}"
    )
}

/// What `read` gathers as rows arrive from its cursor.
pub(super) struct Reader<'a> {
    tenant: &'a str,
    w: &'a Window,
    budget: &'a Budget,
    out: Vec<LoggedRequest>,
    /// bytes held in `out`, as `budget` counts them
    held: usize,
    impressions: i64,
    truncated: bool,
    read_beyond: i64,
    skipped: usize,
    snapshot: Option<String>,
    own_xid: Option<String>,
    own_through: Option<i64>,
    last_beyond: Option<(String, i64)>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(tenant: &'a str, w: &'a Window, budget: &'a Budget) -> Self {
        Reader {
            tenant,
            w,
            budget,
            out: Vec::new(),
            held: 0,
            impressions: 0,
            truncated: false,
            read_beyond: 0,
            skipped: 0,
            snapshot: None,
            own_xid: None,
            own_through: None,
            last_beyond: None,
        }
    }

    /// Takes one row of `read_sql`; false when the limit stops the read
    /// before it.
    pub(super) fn take(&mut self, r: &SpiHeapTupleData) -> Result<bool, pgrx::spi::Error> {
        if self.snapshot.is_none() {
            self.snapshot = r.get::<String>(12)?;
            self.own_xid = r.get::<String>(13)?;
        }
        let id = r.get::<i64>(1)?.unwrap_or(0);
        let is_beyond = r.get::<bool>(14)?.unwrap_or(true);
        self.read_beyond += i64::from(is_beyond);
        let behaviour = behaviour_index(&r.get::<String>(7)?.unwrap_or_default()).ok();
        let features = r
            .get::<Vec<Option<f32>>>(5)?
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.filter(|&v| usable_feature(v)))
            .collect::<Option<Vec<f32>>>();
        let idx: Vec<i32> = r.get::<Vec<i32>>(8)?.unwrap_or_default();
        let usable = behaviour.is_some() && features.is_some();
        // whole requests only; one request larger than the limit
        // is read alone rather than never
        if usable
            && is_beyond
            && !self.out.is_empty()
            && self.impressions + idx.len() as i64 > self.w.limit
        {
            self.truncated = true;
            return Ok(false);
        }
        // read (learned, or skipped as unusable): the cursor passes it
        if is_beyond {
            self.last_beyond = Some((r.get::<String>(2)?.unwrap_or_default(), id));
        }
        if r.get::<bool>(15)?.unwrap_or(false) {
            self.own_through = self.own_through.max(Some(id));
        }
        let (Some(behaviour), Some(features)) = (behaviour, features) else {
            self.skipped += 1;
            return Ok(true);
        };
        self.impressions += idx.len() as i64;
        let context = r.get::<String>(3)?.unwrap_or_default();
        let items: Vec<Option<String>> = r.get::<Vec<Option<String>>>(4)?.unwrap_or_default();
        self.hold(
            self.budget.per_event * idx.len()
                + context.len()
                + items
                    .iter()
                    .map(|t| t.as_ref().map_or(8, |s| s.len() + 24))
                    .sum::<usize>()
                + features.len() * 4,
        );
        let ranks: Vec<i32> = r.get::<Vec<i32>>(9)?.unwrap_or_default();
        let props: Vec<f64> = r.get::<Vec<f64>>(10)?.unwrap_or_default();
        let labels: Vec<bool> = r.get::<Vec<bool>>(11)?.unwrap_or_default();
        let shown = idx
            .iter()
            .zip(&ranks)
            .zip(&props)
            .zip(&labels)
            .map(
                |(((&item_index, &rank), &propensity), &label)| LoggedShown {
                    item_index,
                    rank,
                    propensity,
                    label,
                },
            )
            .collect();
        self.out.push(LoggedRequest {
            id: r.get::<i64>(1)?.unwrap_or(0),
            context,
            items,
            features,
            k: r.get::<i32>(6)?.unwrap_or(1).max(1) as usize,
            behaviour,
            shown,
        });
        Ok(true)
    }

    /// Counts `bytes` more held: past the budget, an ERROR.
    fn hold(&mut self, bytes: usize) {
        self.held += bytes;
        if self.held > self.budget.bytes {
            PgError::input(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "the impressions of {} to read need more than pg_ecom.max_training_mb ({} MB); stopped after {} requests",
                    crate::pg::errors::tenant_name(self.tenant),
                    self.budget.bytes / (1024 * 1024),
                    self.out.len() + 1
                ),
            )
            .hint("Lower pg_ecom.learn_max_impressions, pass a later since, or ask a superuser to raise pg_ecom.max_training_mb.")
            .raise();
        }
    }

    pub(super) fn finish(mut self) -> Read {
        // requests are at most as many as impressions: LIMIT on them stops
        // the scan early; reaching it means more may remain
        self.truncated |= self.read_beyond >= self.w.limit;
        if !self.w.oldest_first {
            self.out.reverse();
        }
        Read {
            requests: self.out,
            truncated: self.truncated,
            skipped: self.skipped,
            seen: self.snapshot.map(|snapshot| Seen {
                snapshot,
                own_xid: self.own_xid,
                own_through: self.own_through,
                relation: requests_oid(),
            }),
            last_beyond: self.last_beyond,
        }
    }
}
