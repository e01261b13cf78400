//! `ecom.feedback`: what followed an impression, recorded one label at a
//! time or from a relation, in the caller's transaction. A label of an
//! impression's own behaviour is final once ecom_learn has learned it
//! (`CLOSED`). Names and operators are schema-qualified as in heads.rs.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::store::heads::BEHAVIOURS_SQL;
use pg_ecom_core::head::{behaviour_index, BEHAVIOURS};

/// The feedback rows a label gives: the behaviour itself and, for a
/// positive label with `implies`, every behaviour before it in the funnel.
/// ON CONFLICT: an explicit label replaces any; an implied one only an
/// implied one; a row that would not change is left alone (idempotent).
/// recorded_at comes from the row proposed (its default, now()): Citus
/// allows only immutable functions in DO UPDATE SET.
const UPSERT: &str = "ON CONFLICT (impression_id, tenant, behaviour) DO UPDATE
        SET label = EXCLUDED.label, implied = EXCLUDED.implied, recorded_at = EXCLUDED.recorded_at
      WHERE (NOT EXCLUDED.implied OR f.implied)
        AND (f.label OPERATOR(pg_catalog.<>) EXCLUDED.label OR f.implied OPERATOR(pg_catalog.<>) EXCLUDED.implied)";

/// Whether an impression's label of its own behaviour is closed: the
/// tenant's active head learned it — its cursor (`impressions::Cursor`,
/// the same test as `impressions::after`, negated) covers the
/// impression's request — with the label it had then. Columns of `i`
/// (impressions), `r` (its request), `h` (the tenant's active head).
const CLOSED: &str = "(h.hyper OPERATOR(pg_catalog.->>) 'learned_through'::pg_catalog.text IS NOT NULL
     AND (r.served_at OPERATOR(pg_catalog.<) (h.hyper OPERATOR(pg_catalog.->>) 'learned_through'::pg_catalog.text)::pg_catalog.timestamptz
          OR (r.served_at OPERATOR(pg_catalog.=) (h.hyper OPERATOR(pg_catalog.->>) 'learned_through'::pg_catalog.text)::pg_catalog.timestamptz
              AND (h.hyper OPERATOR(pg_catalog.->>) 'learned_through_request'::pg_catalog.text IS NULL
                   OR r.id OPERATOR(pg_catalog.<=) (h.hyper OPERATOR(pg_catalog.->>) 'learned_through_request'::pg_catalog.text)::pg_catalog.int8)))
     AND (h.hyper OPERATOR(pg_catalog.->>) 'learned_snapshot'::pg_catalog.text IS NULL
          OR (h.hyper OPERATOR(pg_catalog.->>) 'learned_relation'::pg_catalog.text)::pg_catalog.oid
             OPERATOR(pg_catalog.<>) 'ecom.requests'::pg_catalog.regclass::pg_catalog.oid
          OR r.txid IS NULL
          OR pg_catalog.pg_visible_in_snapshot(r.txid, (h.hyper OPERATOR(pg_catalog.->>) 'learned_snapshot'::pg_catalog.text)::pg_catalog.pg_snapshot)
          OR (r.txid OPERATOR(pg_catalog.=) (h.hyper OPERATOR(pg_catalog.->>) 'learned_xid'::pg_catalog.text)::pg_catalog.xid8
              AND r.id OPERATOR(pg_catalog.<=) (h.hyper OPERATOR(pg_catalog.->>) 'learned_own_through'::pg_catalog.text)::pg_catalog.int8)))";

/// The impressions named by `ids` (a query of one column, impression_id)
/// with their own behaviour, the label it has now (none = false), whether
/// it is closed and the version that closed it. `tenant`, an SQL
/// expression or "", keeps to one tenant's rows: Citus then routes the
/// query to the node that holds them (docs/scaling.md).
fn closed_sql(ids: &str, tenant: &str) -> String {
    let of_tenant = if tenant.is_empty() {
        String::new()
    } else {
        format!("AND i.tenant OPERATOR(pg_catalog.=) {tenant}")
    };
    format!(
        "SELECT i.id, i.behaviour AS own, COALESCE(f.label, false) AS current, COALESCE({CLOSED}, false) AS closed,
                h.version AS learned_by
           FROM ecom.impressions i
           JOIN ecom.requests r ON r.id OPERATOR(pg_catalog.=) i.request_id AND r.tenant OPERATOR(pg_catalog.=) i.tenant
           LEFT JOIN ecom.heads h ON h.tenant OPERATOR(pg_catalog.=) i.tenant AND h.active
           LEFT JOIN ecom.feedback f ON f.impression_id OPERATOR(pg_catalog.=) i.id
                 AND f.tenant OPERATOR(pg_catalog.=) i.tenant
                 AND f.behaviour OPERATOR(pg_catalog.=) i.behaviour
          WHERE i.id OPERATOR(pg_catalog.=) ANY ({ids}) {of_tenant}"
    )
}

/// Takes, until the end of the transaction, the share of each tenant's
/// lock that feedback holds: ecom_learn takes the whole lock (as every
/// writer of the tenant's heads does) before it reads, so a label is
/// either seen by a learn or finds the learn's cursor when it is checked.
/// The transaction takes its xid first (`versions::take_xid`): the check
/// after the wait must see what a learn it waited for committed.
fn lock_tenants_shared(tenants: &str, args: &[pgrx::datum::DatumWithOid]) {
    crate::store::versions::take_xid();
    Spi::connect(|c| {
        c.select(
            &format!(
                "SELECT pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtextextended(
                          'pg_ecom:'::pg_catalog.text OPERATOR(pg_catalog.||) t.tenant, 0::pg_catalog.int8))
                   FROM (SELECT DISTINCT tenant FROM ({tenants}) x ORDER BY tenant) t"
            ),
            None,
            args,
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot lock tenant: {e}")).raise());
}

fn late_label_error(id: i64, own: &str, current: bool, version: i32, tenant: &str) -> ! {
    PgError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!(
            "impression {id} was learned by version {version} of {} with {own} = {current}; its {own} label can no longer change",
            crate::pg::errors::tenant_name(tenant)
        )).hint("An impression's label of the behaviour it was served for is learned once, when ecom_learn reads it (after pg_ecom.feedback_window); later labels of that behaviour would be counted by ecom_evaluate but never learned, so they are refused. Raise pg_ecom.feedback_window for behaviours that come late (purchases).").raise()
}

/// Records `label` for `behaviour` after impression `id`. Returns whether
/// anything was written (false: already recorded so). A label that would
/// change one already learned is an ERROR (`CLOSED`); an implied one is
/// not recorded then.
/// `of_tenant`, when given, is the impression's tenant as the caller
/// says: an impression of another tenant is then not found. Every query
/// after the first keeps to the impression's tenant, so that Citus routes
/// them to the node holding it.
pub fn record(
    id: i64,
    of_tenant: Option<&str>,
    behaviour: usize,
    label: bool,
    implies: bool,
) -> bool {
    let tenant = tenant_of(id, of_tenant);
    lock_tenants_shared(
        "SELECT $1::pg_catalog.text AS tenant",
        &[tenant.as_str().into()],
    );
    let (own, current, closed, learned_by) = label_state(id, &tenant);
    // the funnel position (1-based) whose implied label is left out
    let mut keep_out = 0i64;
    if closed {
        if let Ok(o) = behaviour_index(&own) {
            if o == behaviour && label != current {
                late_label_error(id, &own, current, learned_by, &tenant);
            }
            if label && implies && o < behaviour && !current {
                keep_out = o as i64 + 1;
            }
        }
    }
    write_label(id, &tenant, behaviour, label, implies, keep_out) > 0
}

/// The tenant of impression `id` (which must be `of_tenant`'s, when
/// given); an ERROR when there is none.
fn tenant_of(id: i64, of_tenant: Option<&str>) -> String {
    let tenant = Spi::connect(|c| {
        let t = c.select(
            "SELECT tenant FROM ecom.impressions WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.int8
                AND ($2::pg_catalog.text IS NULL OR tenant OPERATOR(pg_catalog.=) $2::pg_catalog.text)",
            Some(1),
            &[id.into(), of_tenant.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        t.first().get::<String>(1)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.impressions: {e}")).raise());
    let Some(tenant) = tenant else {
        let whose = of_tenant.map_or(String::new(), |t| {
            format!(" of {}", crate::pg::errors::tenant_name(t))
        });
        PgError::new(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, format!("there is no impression {id}{whose}")).hint("Pass an impression_id that ecom_serve returned (impressions of a forgotten tenant are gone; row-level security may hide another tenant's).").raise();
    };
    tenant
}

/// Impression `id`'s own behaviour, its label now, whether that is closed
/// and the version that closed it (`closed_sql`).
fn label_state(id: i64, tenant: &str) -> (String, bool, bool, i32) {
    let state = Spi::connect(|c| {
        let t = c.select(
            &closed_sql(
                &format!("SELECT {id}::pg_catalog.int8"),
                "$1::pg_catalog.text",
            ),
            Some(1),
            &[tenant.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<bool>(3)?.unwrap_or(false),
            r.get::<bool>(4)?.unwrap_or(false),
            r.get::<i32>(5)?.unwrap_or(0),
        )))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.impressions: {e}")).raise());
    // a concurrent ecom_forget between the two reads: as if never there
    let Some((own, current, closed, learned_by)) = state else {
        PgError::new(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("there is no impression {id}"),
        )
        .raise();
    };
    (own, current, closed, learned_by)
}

/// Writes `label` for `behaviour` (and, with `implies`, the implied labels
/// before it but the one at funnel position `keep_out`): the rows written.
fn write_label(
    id: i64,
    tenant: &str,
    behaviour: usize,
    label: bool,
    implies: bool,
    keep_out: i64,
) -> i64 {
    Spi::connect_mut(|c| {
        let t = c.update(
            &format!(
                "WITH w AS (
                   INSERT INTO ecom.feedback AS f (impression_id, tenant, behaviour, label, implied)
                   SELECT i.id, i.tenant, b.behaviour, $3::pg_catalog.bool, b.ord OPERATOR(pg_catalog.<>) $2::pg_catalog.int8
                     FROM ecom.impressions i, pg_catalog.unnest({BEHAVIOURS_SQL}) WITH ORDINALITY AS b(behaviour, ord)
                    WHERE i.id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 AND i.tenant OPERATOR(pg_catalog.=) $6::pg_catalog.text
                      AND (b.ord OPERATOR(pg_catalog.=) $2::pg_catalog.int8
                           OR ($3::pg_catalog.bool AND $4::pg_catalog.bool AND b.ord OPERATOR(pg_catalog.<) $2::pg_catalog.int8
                               AND b.ord OPERATOR(pg_catalog.<>) $5::pg_catalog.int8))
                   {UPSERT}
                   RETURNING 1)
                 SELECT pg_catalog.count(*) FROM w"
            ),
            None,
            &[
                id.into(),
                (behaviour as i64 + 1).into(),
                label.into(),
                implies.into(),
                keep_out.into(),
                tenant.into(),
            ],
        )?;
        t.first().get::<i64>(1).map(|n| n.unwrap_or(0))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.feedback: {e}")).raise())
}

/// What the bulk form reads and the types it accepts for each column:
/// checked, never cast (a numeric 10.7 must not become impression 11, nor
/// an integer 2 or the text 'yes' a true label).
const FEEDBACK_COLUMNS: [(&str, &[&str]); 3] = [
    ("impression_id", &["bigint", "integer", "smallint"]),
    ("behaviour", &["text", "character varying", "character"]),
    ("label", &["boolean"]),
];

const FEEDBACK_HINT: &str = "ecom_feedback(feedback regclass) reads a relation of (impression_id bigint, behaviour text, label boolean); to record one label, call ecom_feedback(impression_id, behaviour [, label]).";

/// The bulk form: every row of `rel` (impression_id bigint, behaviour
/// text, label boolean). Checked whole before anything is written: a NULL,
/// an unknown behaviour or impression, two different labels for one
/// (impression, behaviour), or a label that would change one already
/// learned is an ERROR and records nothing. Returns the rows written or
/// changed (implied ones included).
pub fn record_relation(rel: pg_sys::Oid, implies: bool) -> i64 {
    refuse_distributed();
    let (name, qualified) = check_relation(rel);
    let src = format!(
        "SELECT impression_id::pg_catalog.int8 AS impression_id, behaviour::pg_catalog.text AS behaviour,
                label FROM {qualified}"
    );
    check_rows(&name, &src);
    let ids = format!("SELECT impression_id FROM ({src}) s");
    lock_tenants_shared(
        &format!(
            "SELECT i.tenant FROM ecom.impressions i WHERE i.id OPERATOR(pg_catalog.=) ANY ({ids})"
        ),
        &[],
    );
    let closed = closed_sql(&ids, "");
    refuse_late_labels(&name, &src, &closed);
    write_relation(&src, &closed, implies)
}

/// The bulk form joins the caller's relation with the impressions by id
/// alone, which Citus cannot plan once ecom_distribute has spread them by
/// tenant: a clear ERROR then, rather than Citus' own about joins.
fn refuse_distributed() {
    let distributed = crate::store::schema::distributed("ecom.impressions");
    if distributed {
        PgError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "ecom_feedback(regclass) does not work once ecom_distribute() has distributed the impressions",
        )
        .hint("Record each label with ecom_feedback(impression_id, behaviour, label, tenant), which Citus sends to the tenant's worker (docs/scaling.md).")
        .raise();
    }
}

/// `rel`'s name for messages and its qualified name to read from, once it
/// is known to exist with the columns and types the bulk form reads
/// (`FEEDBACK_COLUMNS`); an ERROR otherwise.
fn check_relation(rel: pg_sys::Oid) -> (String, String) {
    let (name, qualified) = crate::store::relation::names(rel, "feedback");
    if qualified.is_empty() {
        PgError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("there is no relation with OID {}", rel.to_u32()),
        )
        .hint(FEEDBACK_HINT)
        .raise();
    }
    let have = crate::store::relation::columns(rel, "feedback");
    let missing: Vec<&str> = FEEDBACK_COLUMNS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !have.iter().any(|(c, _)| c == n))
        .collect();
    if !missing.is_empty() {
        PgError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!(
                "feedback relation {name} lacks column(s) {} (needs impression_id bigint, behaviour text, label boolean)",
                missing.join(", ")
            )).hint(FEEDBACK_HINT).raise();
    }
    for (col, types) in FEEDBACK_COLUMNS {
        let t = have
            .iter()
            .find(|(c, _)| c == col)
            .map_or("", |(_, t)| t.as_str());
        if !types.contains(&t) {
            PgError::new(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "column \"{col}\" of feedback relation {name} must be {}, not {t}",
                    types[0]
                ),
            )
            .hint(FEEDBACK_HINT)
            .raise();
        }
    }
    (name, qualified)
}

/// Checks the rows of `src` (the relation read as `record_relation` reads
/// it) before anything is written: a NULL, an unknown behaviour or
/// impression, or two different labels for one (impression, behaviour) is
/// an ERROR.
fn check_rows(name: &str, src: &str) {
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
    .unwrap_or_else(|e| PgError::internal(format!("cannot read feedback relation {name}: {e}")).raise());
    let bad = |msg: String| -> ! {
        PgError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("feedback relation {name} {msg}; nothing was recorded"),
        )
        .raise()
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
}

/// Explicit labels in `src` that would change a learned one (`closed`, the
/// `closed_sql` of its impressions): refused, all or nothing.
fn refuse_late_labels(name: &str, src: &str, closed: &str) {
    let late = Spi::connect(|c| {
        let t = c.select(
            &format!(
                "WITH s AS ({src}), c AS ({closed})
                 SELECT s.impression_id, c.own, c.current, c.learned_by, i.tenant,
                        pg_catalog.count(*) OVER ()
                   FROM s JOIN c ON c.id OPERATOR(pg_catalog.=) s.impression_id
                   JOIN ecom.impressions i ON i.id OPERATOR(pg_catalog.=) s.impression_id
                  WHERE c.closed AND s.behaviour OPERATOR(pg_catalog.=) c.own
                    AND s.label OPERATOR(pg_catalog.<>) c.current
                  ORDER BY s.impression_id LIMIT 1"
            ),
            Some(1),
            &[],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<i64>(1)?.unwrap_or(0),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<bool>(3)?.unwrap_or(false),
            r.get::<i32>(4)?.unwrap_or(0),
            r.get::<String>(5)?.unwrap_or_default(),
            r.get::<i64>(6)?.unwrap_or(0),
        )))
    })
    .unwrap_or_else(|e| {
        PgError::internal(format!("cannot read feedback relation {name}: {e}")).raise()
    });
    if let Some((id, own, current, version, tenant, n)) = late {
        PgError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!(
                "feedback relation {name} would change {n} label(s) already learned, for example impression {id}, learned by version {version} of {} with {own} = {current}; nothing was recorded",
                crate::pg::errors::tenant_name(&tenant)
            )).hint("Leave out labels of an impression's own behaviour that come after ecom_learn read it (docs/loop.md, feedback conventions), or raise pg_ecom.feedback_window.").raise();
    }
}

/// Writes the labels of `src` (and, with `implies`, the implied ones) but
/// those `closed` keeps: the rows written or changed.
fn write_relation(src: &str, closed: &str, implies: bool) -> i64 {
    Spi::connect_mut(|c| {
        let t = c.update(
            &format!(
                "WITH s AS ({src}),
                 c AS ({closed}),
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
                     JOIN c ON c.id OPERATOR(pg_catalog.=) x.impression_id
                    WHERE NOT (c.closed AND x.behaviour OPERATOR(pg_catalog.=) c.own AND x.label OPERATOR(pg_catalog.<>) c.current)
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
    .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.feedback: {e}")).raise())
}
