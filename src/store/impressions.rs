//! `ecom.requests`, `ecom.impressions`: what ecom_serve showed, written in
//! the caller's transaction, and read back with what followed (feedback.rs
//! records that) for learning and evaluation, through a cursor that
//! follows commit order. Names and operators are schema-qualified as in
//! heads.rs; the read path's query and row reader are impressions/reader.rs.

use crate::pg::errors::PgError;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::store::heads::StoredHead;
use crate::store::relation::Budget;
use pg_ecom_core::head::BEHAVIOURS;

mod reader;

/// One ecom_serve call, as logged.
pub struct Request<'a> {
    pub tenant: &'a str,
    pub context: &'a str,
    pub items: &'a [Option<&'a str>],
    /// head.k values per given item (empty when the head has none)
    pub features: &'a [f32],
    pub k: i32,
    pub behaviour: usize,
    pub explore: &'a str,
    pub seed: i64,
}

/// One shown item.
pub struct Shown {
    pub item_index: i32,
    pub item: String,
    pub score: f64,
    pub rank: i32,
    pub propensity: f64,
}

/// Writes the request and one impression per shown item; returns the
/// impressions' ids in the order of `shown`.
pub fn log(req: &Request, head: &StoredHead, shown: &[Shown]) -> Vec<i64> {
    let side = head.head.k as i32;
    let items: Vec<Option<String>> = req.items.iter().map(|t| t.map(str::to_owned)).collect();
    let features: Option<Vec<f32>> = (side > 0).then(|| req.features.to_vec());
    let rows = Spi::connect_mut(|c| {
        let t = c.update(
            "WITH r AS (
               INSERT INTO ecom.requests (tenant, context, items, features, k, behaviour, explore, seed, head_tenant, head_version, head_id)
               VALUES ($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text[], $4::pg_catalog.float4[], $5::pg_catalog.int4,
                       $6::pg_catalog.text, $7::pg_catalog.text, $8::pg_catalog.int8, $9::pg_catalog.text, $10::pg_catalog.int4, $11::pg_catalog.int8)
               RETURNING id, served_at)
             INSERT INTO ecom.impressions (request_id, tenant, served_at, context, item_index, item, rank, score, propensity, behaviour, head_version, explore, features)
             SELECT r.id, $1::pg_catalog.text, r.served_at, $2::pg_catalog.text, s.item_index, s.item, s.rank, s.score, s.propensity,
                    $6::pg_catalog.text, $10::pg_catalog.int4, $7::pg_catalog.text,
                    CASE WHEN $17::pg_catalog.int4 OPERATOR(pg_catalog.>) 0
                         THEN ($4::pg_catalog.float4[])[((s.item_index OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog.*) $17::pg_catalog.int4 OPERATOR(pg_catalog.+) 1)
                                                       :(s.item_index OPERATOR(pg_catalog.*) $17::pg_catalog.int4)]
                    END
               FROM r, ROWS FROM (pg_catalog.unnest($12::pg_catalog.int4[]), pg_catalog.unnest($13::pg_catalog.text[]),
                                  pg_catalog.unnest($14::pg_catalog.int4[]), pg_catalog.unnest($15::pg_catalog.float8[]),
                                  pg_catalog.unnest($16::pg_catalog.float8[]))
                       AS s(item_index, item, rank, score, propensity)
              ORDER BY s.rank
             RETURNING id, rank",
            None,
            &[
                req.tenant.into(),
                req.context.into(),
                items.into(),
                features.into(),
                req.k.into(),
                BEHAVIOURS[req.behaviour].into(),
                req.explore.into(),
                req.seed.into(),
                head.tenant.clone().into(),
                head.version.into(),
                head.id.into(),
                shown.iter().map(|s| s.item_index).collect::<Vec<i32>>().into(),
                shown.iter().map(|s| s.item.clone()).collect::<Vec<String>>().into(),
                shown.iter().map(|s| s.rank).collect::<Vec<i32>>().into(),
                shown.iter().map(|s| s.score).collect::<Vec<f64>>().into(),
                shown.iter().map(|s| s.propensity).collect::<Vec<f64>>().into(),
                side.into(),
            ],
        )?;
        let mut out = Vec::with_capacity(shown.len());
        for r in t {
            out.push((r.get::<i64>(1)?.unwrap_or(0), r.get::<i32>(2)?.unwrap_or(0)));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.impressions: {e}")).raise());
    shown
        .iter()
        .map(|s| {
            rows.iter()
                .find(|(_, r)| *r == s.rank)
                .map_or(0, |(id, _)| *id)
        })
        .collect()
}

/// What ecom_forget deleted of the loop's rows.
pub struct Forgotten {
    pub requests: i64,
    pub impressions: i64,
    pub feedback: i64,
}

/// Deletes the tenant's requests and, through their foreign keys, its
/// impressions and feedback; says how many of each. A role that may not
/// delete from ecom.requests gets an ERROR rather than a forget that
/// leaves the tenant's impressions behind.
pub fn forget(tenant: &str) -> Forgotten {
    let allowed = Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.has_table_privilege('ecom.requests'::pg_catalog.regclass, 'SELECT'::pg_catalog.text)
                AND pg_catalog.has_table_privilege('ecom.requests'::pg_catalog.regclass, 'DELETE'::pg_catalog.text)",
            Some(1),
            &[],
        )?
        .first()
        .get::<bool>(1)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot check privileges: {e}")).raise())
    .unwrap_or(false);
    if !allowed {
        PgError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("ecom_forget() also deletes the impressions of {}, and this role may not delete from ecom.requests; nothing was deleted", crate::pg::errors::tenant_name(tenant))).hint("GRANT SELECT, DELETE ON ecom.requests to the role (README, privileges and tenant isolation).").raise();
    }
    Spi::connect_mut(|c| {
        // counted before: the foreign keys delete impressions and feedback
        // with their requests, where RETURNING cannot count them
        let t = c.update(
            "WITH n AS (
               SELECT (SELECT pg_catalog.count(*) FROM ecom.impressions WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text) AS impressions,
                      (SELECT pg_catalog.count(*) FROM ecom.feedback WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text) AS feedback),
             r AS (DELETE FROM ecom.requests WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING 1)
             SELECT (SELECT pg_catalog.count(*) FROM r), n.impressions, n.feedback FROM n",
            None,
            &[tenant.into()],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Forgotten {
            requests: r.get::<i64>(1)?.unwrap_or(0),
            impressions: r.get::<i64>(2)?.unwrap_or(0),
            feedback: r.get::<i64>(3)?.unwrap_or(0),
        })
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot delete from ecom.requests: {e}")).raise())
}

/// Where ecom_learn's last read ended: every request served before `at`
/// was read, and those served at `at` itself up to `request` (all of
/// them when None), of those the read could see (`Seen`). A request
/// committed after that is new to the next read whenever it was served:
/// cursors follow commit order, not time. Heads of 0.3.0 have no `Seen`.
#[derive(Clone, Debug)]
pub struct Cursor {
    pub at: String,
    pub request: Option<i64>,
    pub seen: Option<Seen>,
}

/// What a read could see: its snapshot (as pg_current_snapshot() writes
/// it), and the reading transaction's own requests up to `own_through`
/// (visible to it though its snapshot lists it as running; its requests
/// after the read are not seen). Kept with the oid of ecom.requests: a
/// restored database (pg_dump) has other transaction ids, and its first
/// read falls back to the position alone.
#[derive(Clone, Debug)]
pub struct Seen {
    pub snapshot: String,
    pub own_xid: Option<String>,
    pub own_through: Option<i64>,
    pub relation: u32,
}

/// The oid of ecom.requests (0 when there is none).
pub fn requests_oid() -> u32 {
    // SAFETY: catalog lookups by name, with missing_ok.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"ecom".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return 0;
        }
        pg_sys::get_relname_relid(c"requests".as_ptr(), nsp).to_u32()
    }
}

impl Cursor {
    pub fn from_hyper(hyper: &serde_json::Value) -> Option<Cursor> {
        let seen = hyper["learned_snapshot"].as_str().map(|snapshot| Seen {
            snapshot: snapshot.to_owned(),
            own_xid: hyper["learned_xid"].as_str().map(str::to_owned),
            own_through: hyper["learned_own_through"].as_i64(),
            relation: hyper["learned_relation"].as_u64().unwrap_or(0) as u32,
        });
        Some(Cursor {
            at: hyper["learned_through"].as_str()?.to_owned(),
            request: hyper["learned_through_request"].as_i64(),
            seen: seen.filter(|s| s.relation == requests_oid()),
        })
    }

    /// The parameters `after` reads: at, request, snapshot, own xid, own through.
    fn params(&self) -> [pgrx::datum::DatumWithOid<'static>; 5] {
        let seen = self.seen.as_ref();
        [
            self.at.clone().into(),
            self.request.into(),
            seen.map(|s| s.snapshot.clone()).into(),
            seen.and_then(|s| s.own_xid.clone()).into(),
            seen.and_then(|s| s.own_through).into(),
        ]
    }
}

/// `r` lies beyond the cursor's position (parameters `at`, `request`).
fn beyond(at: &str, request: &str) -> String {
    format!(
        "({at}::pg_catalog.text IS NULL
          OR r.served_at OPERATOR(pg_catalog.>) {at}::pg_catalog.text::pg_catalog.timestamptz
          OR (r.served_at OPERATOR(pg_catalog.=) {at}::pg_catalog.text::pg_catalog.timestamptz
              AND {request}::pg_catalog.int8 IS NOT NULL AND r.id OPERATOR(pg_catalog.>) {request}::pg_catalog.int8))"
    )
}

/// `r` is new after the cursor in parameters `p` (`Cursor::params`, in
/// order): beyond its position, or not seen by its read.
fn after(p: [&str; 5]) -> String {
    let [at, request, snapshot, own, own_through] = p;
    format!(
        "({}
          OR ({snapshot}::pg_catalog.text IS NOT NULL AND r.txid IS NOT NULL
              AND r.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin({snapshot}::pg_catalog.text::pg_catalog.pg_snapshot)
              AND NOT pg_catalog.pg_visible_in_snapshot(r.txid, {snapshot}::pg_catalog.text::pg_catalog.pg_snapshot)
              AND NOT COALESCE(r.txid OPERATOR(pg_catalog.=) {own}::pg_catalog.text::pg_catalog.xid8
                               AND r.id OPERATOR(pg_catalog.<=) {own_through}::pg_catalog.int8, false)))",
        beyond(at, request)
    )
}

/// The newest version of `tenant` that ecom_learn stored and its cursor.
pub fn latest_learned(tenant: &str) -> Option<(i32, Cursor)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT version, hyper FROM ecom.heads
              WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
              ORDER BY version DESC LIMIT 1",
            Some(1),
            &[tenant.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        let hyper = r.get::<pgrx::JsonB>(2)?.map(|j| j.0).unwrap_or_default();
        Ok(r.get::<i32>(1)?.zip(Cursor::from_hyper(&hyper)))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise())
}

/// Whether `tenant` has a request served after `after` and at or before
/// `until` (ISO text from `settled_until`).
pub fn any_served_after(tenant: &str, after: &Cursor, until: &str) -> bool {
    Spi::connect(|c| {
        let t = c.select(
            &format!(
                "SELECT 1 FROM ecom.requests r
                  WHERE r.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
                    AND r.served_at OPERATOR(pg_catalog.<=) $2::pg_catalog.text::pg_catalog.timestamptz
                    AND {}
                  LIMIT 1",
                self::after(["$3", "$4", "$5", "$6", "$7"])
            ),
            Some(1),
            &{
                let [a, b, c, d, e] = after.params();
                [tenant.into(), until.into(), a, b, c, d, e]
            },
        )?;
        Ok::<_, pgrx::spi::Error>(!t.is_empty())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.requests: {e}")).raise())
}

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

/// to_char's format of the times cursors keep: ISO 8601, microseconds,
/// UTC ('Z'), which reads back the same under any DateStyle or TimeZone.
const ISO_UTC: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// The upper end of every read: impressions older than
/// pg_ecom.feedback_window, as ISO 8601 text in UTC (a cursor that reads
/// back the same under any DateStyle or TimeZone).
pub fn settled_until() -> String {
    Spi::connect(|c| {
        let t = c.select(
            &format!(
                "SELECT pg_catalog.to_char((pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1::pg_catalog.float8))
                                           AT TIME ZONE 'UTC', {ISO_UTC})"
            ),
            Some(1),
            &[f64::from(crate::pg::settings::feedback_window_s()).into()],
        )?;
        t.first().get::<String>(1).map(|s| s.unwrap_or_default())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read the clock: {e}")).raise())
}

/// Requests of `tenant` served at or before `until` in window `w`, with
/// their impressions, whole requests up to `w.limit` impressions; read
/// through a cursor, 256 requests at a time, and bounded in bytes by
/// `budget` as they arrive.
pub fn read(tenant: &str, until: &str, w: &Window, budget: &Budget) -> Read {
    let sql = reader::read_sql(w);
    let mut reader = reader::Reader::new(tenant, w, budget);
    Spi::connect(|c| {
        let mut cursor = c.open_cursor(
            sql.as_str(),
            &[
                tenant.into(),
                until.into(),
                w.after.as_ref().map(|a| a.at.clone()).into(),
                w.after.as_ref().and_then(|a| a.request).into(),
                w.since.into(),
                w.limit.into(),
                w.reward.map(|b| BEHAVIOURS[b]).into(),
                w.after
                    .as_ref()
                    .and_then(|a| a.seen.as_ref())
                    .map(|s| s.snapshot.clone())
                    .into(),
                w.after
                    .as_ref()
                    .and_then(|a| a.seen.as_ref())
                    .and_then(|s| s.own_xid.clone())
                    .into(),
                w.after
                    .as_ref()
                    .and_then(|a| a.seen.as_ref())
                    .and_then(|s| s.own_through)
                    .into(),
            ],
        );
        'fetch: loop {
            let t = cursor.fetch(256)?;
            if t.is_empty() {
                break;
            }
            for r in t {
                pgrx::check_for_interrupts!();
                if !reader.take(&r)? {
                    break 'fetch;
                }
            }
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.impressions: {e}")).raise());
    reader.finish()
}
