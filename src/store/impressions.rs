//! `ecom.requests`, `ecom.impressions`: what ecom_serve showed, written in
//! the caller's transaction, and read back with what followed (feedback.rs
//! records that) for learning and evaluation, through a cursor that
//! follows commit order. Names and operators are schema-qualified as in
//! heads.rs; the read path's query and row reader are impressions/reader.rs.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::store::heads::StoredHead;
use crate::store::relation::Budget;
use pg_ecom_core::head::BEHAVIOURS;

mod cursor;
mod reader;

pub use cursor::Cursor;
use cursor::ISO_UTC;
pub use reader::{LoggedRequest, Read, Window};

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
    /// how exact `propensity` is: 0 where exact, else the standard error of
    /// its Monte Carlo estimate (returned, not logged)
    pub propensity_se: f64,
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
        PgError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("ecom_forget() also deletes the impressions of {}, and this role may not delete from ecom.requests; nothing was deleted", crate::pg::errors::tenant_name(tenant))).hint("GRANT SELECT, DELETE ON ecom.requests to the role (docs/security.md, privileges).").raise();
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
    let window = "r.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
                     AND r.served_at OPERATOR(pg_catalog.<=) $2::pg_catalog.text::pg_catalog.timestamptz";
    // the two ways a request is new, each with its bound stated outright
    // for an index (as `reader::read_sql`): beyond the position, or not
    // seen by the last read. The orders make (tenant, served_at) and
    // (tenant, txid) the indexes of choice where statistics that do not
    // know the tenant cost every index of it alike
    let beyond = format!(
        "(SELECT 1 FROM ecom.requests r
                   WHERE {window}
                     AND r.served_at OPERATOR(pg_catalog.>=) $3::pg_catalog.text::pg_catalog.timestamptz
                     AND {}
                   ORDER BY r.served_at
                   LIMIT 1)",
        cursor::beyond("$3", "$4")
    );
    let sql = match after.seen {
        Some(_) => format!(
            "{beyond}
                 UNION ALL
                 (SELECT 1 FROM ecom.requests r
                   WHERE {window}
                     AND r.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($5::pg_catalog.text::pg_catalog.pg_snapshot)
                     AND {}
                   ORDER BY r.txid
                   LIMIT 1)
                 LIMIT 1",
            cursor::after(["$3", "$4", "$5", "$6", "$7"])
        ),
        None => beyond,
    };
    Spi::connect(|c| {
        let t = c.select(&sql, Some(1), &{
            let [a, b, c, d, e] = after.params();
            [tenant.into(), until.into(), a, b, c, d, e]
        })?;
        Ok::<_, pgrx::spi::Error>(!t.is_empty())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.requests: {e}")).raise())
}

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
    let sql = reader::read_sql(w, crate::store::schema::distributed("ecom.requests"));
    let mut reader = reader::Reader::new(tenant, w, budget);
    Spi::connect(|c| {
        // every lookup by key or by a bounded index range
        // (`reader::read_sql`): no plan the statistics choose reads the
        // tenant's whole log (test/t/016_stale_statistics.sh)
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
