//! Thin `#[pg_extern]` wrappers: argument checks and type conversion only.

mod embed;
mod evaluate;
mod explain;
mod info;
mod learn;
mod predict;
mod serve;
mod similarity;
mod tokenize;

use pgrx::{PgLogLevel, PgSqlErrorCode};

/// ERROR for a bad argument value (SQLSTATE 22023).
pub(crate) fn invalid_argument(message: String) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        "pg_ecom",
    )
    .report(PgLogLevel::ERROR);
    unreachable!()
}
