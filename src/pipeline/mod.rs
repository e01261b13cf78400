//! Orchestration: what one SQL call does, stage by stage, across `store`,
//! `encoder` and the pure maths (serve → log; learn → judge → record).
//!
//! May import: `store`, `encoder`, `worker`'s client, `pg`, pg_ecom_core.
//! Never `api`.

pub mod adapt;
pub mod evaluate;
pub mod featurise;
pub mod forget;
pub mod interval;
pub mod judge;
pub mod learn;
pub mod meta_train;
pub mod retrieve;
pub mod serve;
