//! Vectorizers: embedding columns that follow their text column
//! (docs/vectorizer.md). What queues and embeds rows is SQL
//! (`schema.sql`: triggers, `ecom.vectorizer_batch`); here are the
//! processes that run it without anyone asking: a launcher per server
//! (`launcher`) and a worker per database (`database`).
//!
//! May import: `pg`.

pub mod database;
pub mod launcher;
pub mod owner;
