use crate::pg::errors::PgError;
use pgrx::prelude::*;

use crate::encoder::tokenize::MAX_POSITIONS;

fn check_max_len(max_len: i32) -> usize {
    if max_len < 2 || max_len as usize > MAX_POSITIONS {
        PgError::argument(format!(
            "max_len must be between 2 and {MAX_POSITIONS} (room for [CLS] and [SEP]), got {max_len}"
        )).raise();
    }
    max_len as usize
}

/// WordPiece ids of `text`, `[CLS]` first and `[SEP]` last, at most `max_len`.
#[pg_extern(stable, strict, parallel_safe, cost = 200)]
fn ecom_tokenize(text: &str, max_len: default!(i32, 128)) -> Vec<i32> {
    let max_len = check_max_len(max_len);
    crate::encoder::local::tokenizer()
        .encode(text, max_len)
        .unwrap_or_else(|e| PgError::internal(format!("cannot tokenize text: {e}")).raise())
        .into_iter()
        .map(|id| id as i32)
        .collect()
}

/// The word pieces the encoder sees (truncated at `pg_ecom.max_seq_len`).
#[pg_extern(stable, strict, parallel_safe, cost = 200)]
fn ecom_tokens(text: &str) -> Vec<String> {
    crate::encoder::local::tokenizer()
        .tokens(text, crate::pg::settings::max_seq_len())
        .unwrap_or_else(|e| PgError::internal(format!("cannot tokenize text: {e}")).raise())
}
