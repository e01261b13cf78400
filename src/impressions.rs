//! `ecom.requests`, `ecom.impressions`, `ecom.feedback`: what ecom_serve
//! showed and what followed, written and read through SPI in the caller's
//! transaction. Names and operators are schema-qualified as in store.rs.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::errors::raise as fail;

use crate::head::{behaviour_index, BEHAVIOURS};
use crate::relation::Budget;
use crate::store::{StoredHead, BEHAVIOURS_SQL};

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
    .unwrap_or_else(|e| error!("pg_ecom: cannot write ecom.impressions: {e}"));
    shown
        .iter()
        .map(|s| {
            rows.iter()
                .find(|(_, r)| *r == s.rank)
                .map_or(0, |(id, _)| *id)
        })
        .collect()
}

/// The feedback rows a label gives: the behaviour itself and, for a
/// positive label with `implies`, every behaviour before it in the funnel.
/// ON CONFLICT: an explicit label replaces any; an implied one only an
/// implied one; a row that would not change is left alone (idempotent).
const UPSERT: &str = "ON CONFLICT (impression_id, behaviour) DO UPDATE
        SET label = EXCLUDED.label, implied = EXCLUDED.implied, recorded_at = pg_catalog.now()
      WHERE (NOT EXCLUDED.implied OR f.implied)
        AND (f.label OPERATOR(pg_catalog.<>) EXCLUDED.label OR f.implied OPERATOR(pg_catalog.<>) EXCLUDED.implied)";

/// Records `label` for `behaviour` after impression `id`. Returns whether
/// anything was written (false: already recorded so).
pub fn record(id: i64, behaviour: usize, label: bool, implies: bool) -> bool {
    let (found, written) = Spi::connect_mut(|c| {
        let t = c.update(
            &format!(
                "WITH i AS (SELECT id, tenant FROM ecom.impressions WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.int8),
                 w AS (
                   INSERT INTO ecom.feedback AS f (impression_id, tenant, behaviour, label, implied)
                   SELECT i.id, i.tenant, b.behaviour, $3::pg_catalog.bool, b.ord OPERATOR(pg_catalog.<>) $2::pg_catalog.int8
                     FROM i, pg_catalog.unnest({BEHAVIOURS_SQL}) WITH ORDINALITY AS b(behaviour, ord)
                    WHERE b.ord OPERATOR(pg_catalog.=) $2::pg_catalog.int8
                       OR ($3::pg_catalog.bool AND $4::pg_catalog.bool AND b.ord OPERATOR(pg_catalog.<) $2::pg_catalog.int8)
                   {UPSERT}
                   RETURNING 1)
                 SELECT (SELECT pg_catalog.count(*) FROM i), (SELECT pg_catalog.count(*) FROM w)"
            ),
            None,
            &[
                id.into(),
                (behaviour as i64 + 1).into(),
                label.into(),
                implies.into(),
            ],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or(0),
            r.get::<i64>(2)?.unwrap_or(0),
        ))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot write ecom.feedback: {e}"));
    if found == 0 {
        fail(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("pg_ecom: there is no impression {id}"),
            Some("Pass an impression_id that ecom_serve returned (impressions of a forgotten tenant are gone; row-level security may hide another tenant's)."),
        );
    }
    written > 0
}

/// The bulk form: every row of `rel` (impression_id bigint, behaviour
/// text, label boolean). Checked whole before anything is written: a NULL,
/// an unknown behaviour or impression, or two different labels for one
/// (impression, behaviour) is an ERROR and records nothing. Returns the
/// rows written or changed (implied ones included).
pub fn record_relation(rel: pg_sys::Oid, implies: bool) -> i64 {
    let (name, qualified) = crate::relation::names(rel, "feedback");
    let have = crate::relation::columns(rel, "feedback");
    let missing: Vec<&str> = ["impression_id", "behaviour", "label"]
        .into_iter()
        .filter(|n| !have.iter().any(|(c, _)| c == n))
        .collect();
    if !missing.is_empty() {
        fail(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "pg_ecom: feedback relation {name} lacks column(s) {} (needs impression_id bigint, behaviour text, label boolean)",
                missing.join(", ")
            ),
            None,
        );
    }
    let src = format!(
        "SELECT impression_id::pg_catalog.int8 AS impression_id, behaviour::pg_catalog.text AS behaviour,
                label::pg_catalog.bool AS label FROM {qualified}"
    );
    let (nulls, bad_behaviour, unknown, example, conflicting) = Spi::connect(|c| {
        let t = c.select(
            &format!(
                "WITH s AS ({src})
                 SELECT pg_catalog.count(*) FILTER (WHERE impression_id IS NULL OR behaviour IS NULL OR label IS NULL),
                        pg_catalog.count(*) FILTER (WHERE behaviour IS NOT NULL AND NOT behaviour OPERATOR(pg_catalog.=) ANY ({BEHAVIOURS_SQL})),
                        pg_catalog.count(*) FILTER (WHERE impression_id IS NOT NULL AND NOT EXISTS
                             (SELECT 1 FROM ecom.impressions i WHERE i.id OPERATOR(pg_catalog.=) s.impression_id)),
                        pg_catalog.min(impression_id) FILTER (WHERE impression_id IS NOT NULL AND NOT EXISTS
                             (SELECT 1 FROM ecom.impressions i WHERE i.id OPERATOR(pg_catalog.=) s.impression_id)),
                        (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM s WHERE label IS NOT NULL
                            GROUP BY impression_id, behaviour HAVING pg_catalog.count(DISTINCT label) OPERATOR(pg_catalog.>) 1) d)
                   FROM s"
            ),
            Some(1),
            &[],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or(0),
            r.get::<i64>(2)?.unwrap_or(0),
            r.get::<i64>(3)?.unwrap_or(0),
            r.get::<i64>(4)?,
            r.get::<i64>(5)?.unwrap_or(0),
        ))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read feedback relation {name}: {e}"));
    let bad = |msg: String| -> ! {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("pg_ecom: feedback relation {name} {msg}; nothing was recorded"),
            None,
        )
    };
    if nulls > 0 {
        bad(format!(
            "has {nulls} row(s) with a NULL impression_id, behaviour or label"
        ));
    }
    if bad_behaviour > 0 {
        bad(format!(
            "has {bad_behaviour} row(s) with an unknown behaviour (valid behaviours are: {})",
            BEHAVIOURS.join(", ")
        ));
    }
    if unknown > 0 {
        bad(format!(
            "names {unknown} impression(s) that do not exist, for example {}",
            example.unwrap_or(0)
        ));
    }
    if conflicting > 0 {
        bad(format!(
            "gives both true and false for {conflicting} (impression, behaviour) pair(s)"
        ));
    }
    Spi::connect_mut(|c| {
        let t = c.update(
            &format!(
                "WITH s AS ({src}),
                 x AS (
                   SELECT impression_id, behaviour, label, false AS implied FROM s
                   UNION ALL
                   SELECT s.impression_id, b.behaviour, true, true
                     FROM s, pg_catalog.unnest({BEHAVIOURS_SQL}) WITH ORDINALITY AS b(behaviour, ord)
                    WHERE $1::pg_catalog.bool AND s.label
                      AND b.ord OPERATOR(pg_catalog.<) pg_catalog.array_position({BEHAVIOURS_SQL}, s.behaviour)),
                 w AS (
                   INSERT INTO ecom.feedback AS f (impression_id, tenant, behaviour, label, implied)
                   SELECT DISTINCT ON (x.impression_id, x.behaviour) x.impression_id, i.tenant, x.behaviour, x.label, x.implied
                     FROM x JOIN ecom.impressions i ON i.id OPERATOR(pg_catalog.=) x.impression_id
                    ORDER BY x.impression_id, x.behaviour, x.implied
                   {UPSERT}
                   RETURNING 1)
                 SELECT pg_catalog.count(*) FROM w"
            ),
            None,
            &[implies.into()],
        )?;
        t.first().get::<i64>(1).map(|n| n.unwrap_or(0))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot write ecom.feedback: {e}"))
}

/// Deletes the tenant's requests and, through their foreign keys, its
/// impressions and feedback; returns how many requests. A role that may
/// not delete from ecom.requests gets an ERROR rather than a forget that
/// leaves the tenant's impressions behind.
pub fn forget(tenant: &str) -> i64 {
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
    .unwrap_or_else(|e| error!("pg_ecom: cannot check privileges: {e}"))
    .unwrap_or(false);
    if !allowed {
        fail(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("pg_ecom: ecom_forget() also deletes the impressions of tenant \"{tenant}\", and this role may not delete from ecom.requests; nothing was deleted"),
            Some("GRANT SELECT, DELETE ON ecom.requests to the role (README, privileges and tenant isolation)."),
        );
    }
    Spi::connect_mut(|c| {
        c.update(
            "WITH r AS (DELETE FROM ecom.requests WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING 1)
             SELECT pg_catalog.count(*) FROM r",
            None,
            &[tenant.into()],
        )?
        .first()
        .get::<i64>(1)
        .map(|n| n.unwrap_or(0))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot delete from ecom.requests: {e}"))
}

/// Where ecom_learn's last read ended: every request served before `at`
/// was read, and those served at `at` itself up to `request` (all of
/// them when None).
#[derive(Clone, Debug)]
pub struct Cursor {
    pub at: String,
    pub request: Option<i64>,
}

impl Cursor {
    pub fn from_hyper(hyper: &serde_json::Value) -> Option<Cursor> {
        Some(Cursor {
            at: hyper["learned_through"].as_str()?.to_owned(),
            request: hyper["learned_through_request"].as_i64(),
        })
    }
}

/// `r.served_at` after the cursor in $3/$4 (at, request).
const AFTER: &str = "($3::pg_catalog.text IS NULL
                      OR r.served_at OPERATOR(pg_catalog.>) $3::pg_catalog.text::pg_catalog.timestamptz
                      OR (r.served_at OPERATOR(pg_catalog.=) $3::pg_catalog.text::pg_catalog.timestamptz
                          AND $4::pg_catalog.int8 IS NOT NULL AND r.id OPERATOR(pg_catalog.>) $4::pg_catalog.int8))";

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
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"))
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
                    AND {AFTER}
                  LIMIT 1"
            ),
            Some(1),
            &[tenant.into(), until.into(), after.at.clone().into(), after.request.into()],
        )?;
        Ok::<_, pgrx::spi::Error>(!t.is_empty())
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.requests: {e}"))
}

/// A logged request and its impressions that fall in a read window.
pub struct Logged {
    pub id: i64,
    /// ISO 8601 in UTC, as `settled_until`
    pub served_at: String,
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
    pub requests: Vec<Logged>,
    /// the limit stopped the read before the window's end
    pub truncated: bool,
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
            &[f64::from(crate::config::feedback_window_s()).into()],
        )?;
        t.first().get::<String>(1).map(|s| s.unwrap_or_default())
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read the clock: {e}"))
}

/// Requests of `tenant` served at or before `until` in window `w`, with
/// their impressions, whole requests up to `w.limit` impressions; read
/// through a cursor, 256 requests at a time, and bounded in bytes by
/// `budget` as they arrive.
pub fn read(tenant: &str, until: &str, w: &Window, budget: &Budget) -> Read {
    let dir = if w.oldest_first { "ASC" } else { "DESC" };
    let sql = format!(
        "WITH q AS (
           SELECT r.id FROM ecom.requests r
            WHERE r.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
              AND r.served_at OPERATOR(pg_catalog.<=) $2::pg_catalog.text::pg_catalog.timestamptz
              AND {AFTER}
              AND ($5::pg_catalog.timestamptz IS NULL OR r.served_at OPERATOR(pg_catalog.>=) $5::pg_catalog.timestamptz)
            ORDER BY r.served_at {dir}, r.id {dir}
            LIMIT $6::pg_catalog.int8)
         SELECT r.id, pg_catalog.to_char(r.served_at AT TIME ZONE 'UTC', {ISO_UTC}),
                r.context, r.items, r.features, r.k, r.behaviour,
                pg_catalog.array_agg(i.item_index ORDER BY i.rank), pg_catalog.array_agg(i.rank ORDER BY i.rank),
                pg_catalog.array_agg(i.propensity ORDER BY i.rank),
                pg_catalog.array_agg(COALESCE(f.label, false) ORDER BY i.rank)
           FROM q
           JOIN ecom.requests r ON r.id OPERATOR(pg_catalog.=) q.id
           JOIN ecom.impressions i ON i.request_id OPERATOR(pg_catalog.=) r.id
           LEFT JOIN ecom.feedback f ON f.impression_id OPERATOR(pg_catalog.=) i.id
                 AND f.behaviour OPERATOR(pg_catalog.=) COALESCE($7::pg_catalog.text, i.behaviour)
          GROUP BY r.id
          ORDER BY r.served_at {dir}, r.id {dir}"
    );
    let mut out = Vec::new();
    let mut held = 0usize;
    let mut impressions = 0i64;
    let mut truncated = false;
    let mut seen = 0i64;
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
            ],
        );
        'fetch: loop {
            let t = cursor.fetch(256)?;
            if t.is_empty() {
                break;
            }
            for r in t {
                pgrx::check_for_interrupts!();
                seen += 1;
                let idx: Vec<i32> = r.get::<Vec<i32>>(8)?.unwrap_or_default();
                // whole requests only; one request larger than the limit
                // is read alone rather than never
                if !out.is_empty() && impressions + idx.len() as i64 > w.limit {
                    truncated = true;
                    break 'fetch;
                }
                impressions += idx.len() as i64;
                let context = r.get::<String>(3)?.unwrap_or_default();
                let items: Vec<Option<String>> = r.get::<Vec<Option<String>>>(4)?.unwrap_or_default();
                let features: Vec<f32> = r.get::<Vec<f32>>(5)?.unwrap_or_default();
                held += budget.per_event * idx.len()
                    + context.len()
                    + items.iter().map(|t| t.as_ref().map_or(8, |s| s.len() + 24)).sum::<usize>()
                    + features.len() * 4;
                if held > budget.bytes {
                    fail(
                        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        format!(
                            "the impressions of tenant \"{tenant}\" to read need more than pg_ecom.max_training_mb ({} MB); stopped after {} requests",
                            budget.bytes / (1024 * 1024),
                            out.len() + 1
                        ),
                        Some("Lower pg_ecom.learn_max_impressions, pass a later since, or ask a superuser to raise pg_ecom.max_training_mb."),
                    );
                }
                let ranks: Vec<i32> = r.get::<Vec<i32>>(9)?.unwrap_or_default();
                let props: Vec<f64> = r.get::<Vec<f64>>(10)?.unwrap_or_default();
                let labels: Vec<bool> = r.get::<Vec<bool>>(11)?.unwrap_or_default();
                let behaviour = behaviour_index(&r.get::<String>(7)?.unwrap_or_default()).unwrap_or(0);
                let shown = idx
                    .iter()
                    .zip(&ranks)
                    .zip(&props)
                    .zip(&labels)
                    .map(|(((&item_index, &rank), &propensity), &label)| LoggedShown {
                        item_index,
                        rank,
                        propensity,
                        label,
                    })
                    .collect();
                out.push(Logged {
                    id: r.get::<i64>(1)?.unwrap_or(0),
                    served_at: r.get::<String>(2)?.unwrap_or_default(),
                    context,
                    items,
                    features,
                    k: r.get::<i32>(6)?.unwrap_or(1).max(1) as usize,
                    behaviour,
                    shown,
                });
            }
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.impressions: {e}"));
    // requests are at most as many as impressions: LIMIT on them stops
    // the scan early; reaching it means more may remain
    truncated |= seen >= w.limit;
    if !w.oldest_first {
        out.reverse();
    }
    Read {
        requests: out,
        truncated,
    }
}
