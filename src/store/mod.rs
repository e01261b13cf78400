//! The tables pg_ecom owns and the relations it reads: heads (`heads`
//! reads them, through `head_cache`, which decodes each row version once
//! per backend, and `memo`, which answers repeated lookups within one
//! statement; `versions` writes them), the guard that the SQL objects are
//! as new as the library (`schema`), the impressions `ecom_serve` logs,
//! the feedback that follows, and caller-named relations of events.
//!
//! Every statement is schema-qualified, with exact types. May import: `pg`,
//! `encoder` (a head records the encoder it was trained with),
//! pg_ecom_core.

pub mod feedback;
pub mod head_cache;
pub mod heads;
pub mod impressions;
pub mod memo;
pub mod relation;
pub mod schema;
pub mod versions;
