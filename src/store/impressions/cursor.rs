//! Positions in the log that follow commit order: where ecom_learn's last
//! read ended (`Cursor`), what that read could see (`Seen`), and the SQL
//! conditions that select what lies after them.

use pgrx::prelude::*;

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
    pub(super) fn params(&self) -> [pgrx::datum::DatumWithOid<'static>; 5] {
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
pub(super) fn beyond(at: &str, request: &str) -> String {
    format!(
        "({at}::pg_catalog.text IS NULL
          OR r.served_at OPERATOR(pg_catalog.>) {at}::pg_catalog.text::pg_catalog.timestamptz
          OR (r.served_at OPERATOR(pg_catalog.=) {at}::pg_catalog.text::pg_catalog.timestamptz
              AND {request}::pg_catalog.int8 IS NOT NULL AND r.id OPERATOR(pg_catalog.>) {request}::pg_catalog.int8))"
    )
}

/// `r` is new after the cursor in parameters `p` (`Cursor::params`, in
/// order): beyond its position, or not seen by its read.
pub(super) fn after(p: [&str; 5]) -> String {
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

/// to_char's format of the times cursors keep: ISO 8601, microseconds,
/// UTC ('Z'), which reads back the same under any DateStyle or TimeZone.
pub(super) const ISO_UTC: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";
