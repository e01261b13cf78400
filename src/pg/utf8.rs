//! pg_ecom reads text as UTF-8 (Rust strings, the WordPiece tokenizer).
//! In a database of another encoding the bytes of non-ASCII text are not
//! UTF-8, so CREATE EXTENSION refuses such databases (lib.rs) and every
//! entry point that reads text checks once per backend as well: a backend
//! serves one database for its whole life.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::{pg_sys, PgSqlErrorCode};

use crate::pg::errors::PgError;

static CHECKED: AtomicBool = AtomicBool::new(false);

pub fn require_utf8() {
    if CHECKED.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: reads the database encoding fixed at backend start.
    let (enc, name) = unsafe {
        (
            pg_sys::GetDatabaseEncoding(),
            std::ffi::CStr::from_ptr(pg_sys::GetDatabaseEncodingName())
                .to_string_lossy()
                .into_owned(),
        )
    };
    if enc != pg_sys::pg_enc::PG_UTF8 as i32 {
        PgError::input(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("pg_ecom needs a UTF8 database; this database's encoding is {name}"),
        )
        .hint("Create the database with ENCODING 'UTF8' (createdb -E UTF8 -T template0) and install pg_ecom there.")
        .raise();
    }
    CHECKED.store(true, Ordering::Relaxed);
}
