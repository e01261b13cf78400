//! A vectorizer's write into its table runs as the table's owner, in a
//! security-restricted operation, the way REFRESH MATERIALIZED VIEW runs
//! an owner's code: the table's triggers, constraints, policies and index
//! expressions get the owner's rights and cannot SET ROLE back to the
//! worker's superuser. A deferred trigger the write queued is made to fire
//! before the identity is given back (SET CONSTRAINTS ALL IMMEDIATE), which
//! Postgres refuses in that context: such a write fails; and whatever
//! settings the owner's code changed are rolled back, as REFRESH
//! MATERIALIZED VIEW rolls them back. `search_path` is pg_catalog first,
//! then the session's default: the table's own unqualified names resolve as
//! in an ordinary session, the statement's operators only to the system's.
//! `lock_timeout` bounds the wait for a row or table a user keeps locked
//! (the batch is tried again later, schema.sql).

use pgrx::prelude::*;

use crate::pg::errors::PgError;

/// How long a write waits for a row another session holds.
const LOCK_TIMEOUT: &std::ffi::CStr = c"5s";

/// Runs `statement` ($1 = `keys`, $2 = `role`; it returns one count) as
/// the owner of table `source`; returns that count.
pub fn write_as_owner(source: pg_sys::Oid, statement: &str, keys: Vec<String>, role: &str) -> i64 {
    // SAFETY: reads this session's user
    if !unsafe { pg_sys::superuser() } {
        PgError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "only a superuser may write a vectorizer's embeddings",
        )
        .hint("Run ecom_vectorizer_run() as a superuser, or leave it to the vectorizer worker.")
        .raise();
    }
    let owner = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
        &[source.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| PgError::argument(format!("relation {} does not exist", source.to_u32())).raise());
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: what REFRESH MATERIALIZED VIEW does around the owner's query.
    // An ERROR below needs no undoing here: the (sub)transaction's abort
    // restores the user, the security context and the settings.
    let nest = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            context
                | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                    as i32,
        );
        let nest = pg_sys::NewGUCNestLevel();
        let reset =
            std::ffi::CStr::from_ptr(pg_sys::GetConfigOptionResetString(c"search_path".as_ptr()));
        let path = std::ffi::CString::new(format!("pg_catalog, {}", reset.to_string_lossy()))
            .unwrap_or_else(|_| c"pg_catalog".to_owned());
        crate::pg::scoped::set_saved(&[
            (c"search_path", path.as_c_str()),
            (c"lock_timeout", LOCK_TIMEOUT),
        ]);
        nest
    };
    let written = Spi::get_one_with_args::<i64>(statement, &[keys.into(), role.into()])
        .unwrap_or_else(|e| PgError::internal(format!("vectorizer write: {e}")).raise())
        .unwrap_or(0);
    // deferred triggers of the owner's would otherwise fire at commit, as
    // the caller. Postgres fires none inside a security-restricted
    // operation: a write that queued one fails here (the row is parked,
    // with that error), never escalates
    Spi::run("SET CONSTRAINTS ALL IMMEDIATE")
        .unwrap_or_else(|e| PgError::internal(format!("vectorizer write: {e}")).raise());
    // SAFETY: undoes the above, in reverse; `false`: the settings the
    // owner's code changed go too
    unsafe {
        pg_sys::AtEOXact_GUC(false, nest);
        pg_sys::SetUserIdAndSecContext(user, context);
    }
    written
}
