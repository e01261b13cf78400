//! Reads labelled events from a caller's table or view (support relations
//! of `ecom_adapt`, source relations of `ecom_meta_train`).
//!
//! Runs as the caller (functions are SECURITY INVOKER), so the caller's
//! privileges and row-level security apply. The relation name in the query
//! text is Postgres' own quoting of schema and name, never caller text, and
//! every function, type and operator is schema-qualified (see heads.rs).

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use pg_ecom_core::head::{behaviour_index, feature_out_of_range, usable_feature};

pub struct Event {
    pub tenant: Option<String>,
    pub context: String,
    pub item: String,
    pub behaviour: usize,
    pub label: bool,
    pub features: Vec<f32>,
}

pub struct Events {
    pub name: String,
    pub rows: Vec<Event>,
    /// rows with a NULL label, context, item or behaviour: skipped, counted
    pub skipped: usize,
    pub n_features: usize,
    /// rows are in time order (the relation has a "ts" column)
    pub ordered: bool,
}

const TEXTS: [&str; 3] = ["text", "character varying", "character"];

/// What training may hold for one relation, and what one event costs on
/// top of its texts and features once featurised (see `read`).
pub struct Budget {
    pub bytes: usize,
    pub per_event: usize,
}

/// `rel` as the caller would write it (for messages) and with its schema
/// always (for queries built on it); empty when there is no such relation.
pub fn names(rel: pg_sys::Oid, role: &str) -> (String, String) {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text,
                    pg_catalog.format('%I.%I'::pg_catalog.text, n.nspname, r.relname)
               FROM pg_catalog.pg_class r
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) r.relnamespace
              WHERE r.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
            Some(1),
            &[rel.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>((String::new(), String::new()));
        }
        let r = t.first();
        Ok((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot inspect {role} relation: {e}")).raise())
}

/// Whether column `col` of `rel` has a type ORDER BY can sort: a default
/// btree ordering (its base type's, for a domain), as the type cache finds.
fn sortable(rel: pg_sys::Oid, col: &str) -> bool {
    let typid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT atttypid FROM pg_catalog.pg_attribute
          WHERE attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
            AND attname OPERATOR(pg_catalog.=) $2::pg_catalog.name
            AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
        &[rel.into(), col.into()],
    )
    .unwrap_or_else(|e| PgError::internal(format!("cannot inspect column {col}: {e}")).raise());
    typid.is_some_and(|t| {
        // SAFETY: a catalog lookup on this backend's own thread; the entry
        // lives in the type cache for the backend's life
        let entry = unsafe { pg_sys::lookup_type_cache(t, pg_sys::TYPECACHE_LT_OPR as i32) };
        !entry.is_null() && unsafe { (*entry).lt_opr } != pg_sys::InvalidOid
    })
}

/// `rel`'s columns: (name, type as format_type writes it).
pub fn columns(rel: pg_sys::Oid, role: &str) -> Vec<(String, String)> {
    Spi::connect(|c| {
        let cols = c.select(
            "SELECT attname::pg_catalog.text, pg_catalog.format_type(atttypid, NULL::pg_catalog.int4)
               FROM pg_catalog.pg_attribute
              WHERE attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
                AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
            None,
            &[rel.into()],
        )?;
        let mut columns = Vec::new();
        for r in cols {
            columns.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::Error>(columns)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot inspect {role} relation: {e}")).raise())
}

/// Reads `rel`; `with_tenant` requires a `tenant` column too. Stops with an
/// ERROR as soon as the events read so far, featurised, would exceed
/// `budget` (`pg_ecom.max_training_mb`): a relation of any size must not
/// make a backend allocate without bound.
pub fn read(rel: pg_sys::Oid, role: &str, with_tenant: bool, budget: &Budget) -> Events {
    crate::pg::utf8::require_utf8();
    let (name, qualified) = names(rel, role);
    if qualified.is_empty() {
        PgError::input(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("there is no {role} relation with OID {}", rel.to_u32()),
        )
        .raise();
    }
    let columns = columns(rel, role);

    let has_features = check_columns(&columns, role, &name, with_tenant);
    // an optional "ts" column orders events in time (any sortable type):
    // meta-validation then adapts on each tenant's earliest events, as
    // ecom_adapt is used on a new tenant
    let ordered = type_of(&columns, "ts").is_some();
    if ordered && !sortable(rel, "ts") {
        PgError::input(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "column \"ts\" of {role} relation {name} is of type {}, which has no ordering: ts orders events in time and must be of a sortable type (timestamptz, bigint, …)",
                type_of(&columns, "ts").unwrap_or_default()
            ),
        )
        .raise();
    }
    let sql = read_sql(&qualified, with_tenant, has_features, ordered);
    let mut rows = Vec::new();
    let mut skipped = 0;
    let mut held = 0usize;
    let mut n_features: Option<usize> = None;
    Spi::connect(|c| {
        for r in c.select(&sql, None, &[])? {
            pgrx::check_for_interrupts!();
            let tenant = r.get::<String>(1)?;
            let (context, item, behaviour, label) =
                (r.get::<String>(2)?, r.get::<String>(3)?, r.get::<String>(4)?, r.get::<bool>(5)?);
            let (Some(context), Some(item), Some(behaviour), Some(label)) = (context, item, behaviour, label) else {
                skipped += 1;
                continue;
            };
            if with_tenant && tenant.is_none() {
                skipped += 1;
                continue;
            }
            let behaviour = behaviour_index(&behaviour)
                .unwrap_or_else(|e| PgError::input(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{role} relation {name}: {e}")).raise());
            let features = features_of(r.get::<Array<f32>>(6)?, role, &name);
            match n_features {
                None => n_features = Some(features.len()),
                Some(n) if n != features.len() => PgError::input(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{role} relation {name}: every row needs the same number of features ({n} and {})", features.len())).raise(),
                _ => {}
            }
            held += budget.per_event
                + context.len()
                + item.len()
                + tenant.as_ref().map_or(0, String::len)
                + features.len() * std::mem::size_of::<f32>();
            if held > budget.bytes {
                PgError::input(
                    PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "{role} relation {name} needs more than pg_ecom.max_training_mb ({} MB) once featurised; stopped after {} rows",
                        budget.bytes / (1024 * 1024),
                        rows.len() + 1
                    ),
                )
                .hint("Train on a sample of the relation, or ask a superuser to raise pg_ecom.max_training_mb.")
                .raise();
            }
            rows.push(Event { tenant, context, item, behaviour, label, features });
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read {role} relation {name}: {e}")).raise());
    Events {
        name,
        rows,
        skipped,
        n_features: n_features.unwrap_or(0),
        ordered,
    }
}

/// The type of column `col` among `columns`, as format_type writes it.
fn type_of<'a>(columns: &'a [(String, String)], col: &str) -> Option<&'a str> {
    columns
        .iter()
        .find(|(n, _)| n == col)
        .map(|(_, t)| t.as_str())
}

/// Checks that `columns` hold what `read` needs, of types it accepts (an
/// ERROR otherwise); returns whether there is a "features" column.
fn check_columns(columns: &[(String, String)], role: &str, name: &str, with_tenant: bool) -> bool {
    let mut need = vec![
        ("context", &TEXTS[..]),
        ("item", &TEXTS[..]),
        ("behaviour", &TEXTS[..]),
        ("label", &["boolean"][..]),
    ];
    if with_tenant {
        need.insert(0, ("tenant", &TEXTS[..]));
    }
    for (col, types) in &need {
        match type_of(columns, col) {
            None => PgError::input(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!(
                    "{role} relation {name} has no column \"{col}\" (needs {}label boolean, and optionally features real[] and ts)",
                    if with_tenant { "tenant text, context text, item text, behaviour text, " } else { "context text, item text, behaviour text, " }
                )).raise(),
            Some(t) if !types.contains(&t) => PgError::input(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, format!("column \"{col}\" of {role} relation {name} must be {}, not {t}", types[0])).raise(),
            _ => {}
        }
    }
    match type_of(columns, "features") {
        None => false,
        Some("real[]" | "double precision[]" | "numeric[]") => true,
        Some(t) => PgError::input(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("column \"features\" of {role} relation {name} must be real[], not {t}"),
        )
        .raise(),
    }
}

/// The query `read` runs: every column it reads, as the types it reads,
/// in a deterministic order.
fn read_sql(qualified: &str, with_tenant: bool, has_features: bool, ordered: bool) -> String {
    // ties (and relations without ts) are broken over every column read,
    // texts in byte order: the same rows train the same head whatever
    // order they are stored in, in any database
    let c = "COLLATE pg_catalog.\"C\"";
    let mut order = Vec::new();
    if ordered {
        order.push("ts".to_string());
    }
    if with_tenant {
        order.push(format!("tenant::pg_catalog.text {c}"));
    }
    for col in ["context", "item", "behaviour"] {
        order.push(format!("{col}::pg_catalog.text {c}"));
    }
    order.push("label".into());
    if has_features {
        order.push("features::pg_catalog.float4[]".into());
    }
    format!(
        "SELECT {}, context::pg_catalog.text, item::pg_catalog.text, behaviour::pg_catalog.text, label, {} FROM {qualified} ORDER BY {}",
        if with_tenant {
            "tenant::pg_catalog.text"
        } else {
            "NULL::pg_catalog.text"
        },
        if has_features {
            "features::pg_catalog.float4[]"
        } else {
            "NULL::pg_catalog.float4[]"
        },
        order.join(", ")
    )
}

/// A row's features: each must be finite and within ±`FEATURE_LIMIT`
/// (an ERROR otherwise).
fn features_of(a: Option<Array<f32>>, role: &str, name: &str) -> Vec<f32> {
    match a {
        None => Vec::new(),
        Some(a) => a
            .iter()
            .map(|x| match x {
                Some(v) if usable_feature(v) => v,
                Some(v) if v.is_finite() => PgError::input(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{role} relation {name}: {}", feature_out_of_range(v)),
                )
                .raise(),
                _ => PgError::input(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "{role} relation {name}: features must not contain NULL, NaN or infinity"
                    ),
                )
                .raise(),
            })
            .collect(),
    }
}
