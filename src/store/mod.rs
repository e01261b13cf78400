//! The tables pg_ecom owns and the relations it reads: heads (`heads`
//! reads, `versions` writes), the impressions `ecom_serve` logs, the
//! feedback that follows, and caller-named relations of events.
//!
//! Every statement is schema-qualified, with exact types. May import: `pg`,
//! `encoder` (a head records the encoder it was trained with),
//! pg_ecom_core.

pub mod feedback;
pub mod heads;
pub mod impressions;
pub mod relation;
pub mod versions;
