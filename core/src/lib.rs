//! pg_ecom's pure maths: no Postgres, no ONNX Runtime, no I/O.
//!
//! The extension crate calls into this one; nothing here calls back except
//! through the `between` callbacks long loops take, which is where Postgres
//! passes its interrupt check. The compiler checks "pure": this crate has
//! no pgrx dependency.
//!
//! Owns: the behaviours (`behaviour`), the head (`head`), its item effects
//! (`items`, a tenant's own prior for them `item_prior`, for its base
//! rate `bias_prior`) and its losses (`metrics`), the adaptation prior
//! (`prior`, its taste directions `taste`) and posterior (`posterior`,
//! its credible intervals `interval`), training (`train`: adapt, meta,
//! solvers, episodes), what is shown (`explore`), off-policy evaluation
//! (`ope`), candidate retrieval (`retrieval`), embedding similarity
//! (`similarity`) and the seeded `rng`.
//! May import: std, serde.

pub mod behaviour;
pub mod bias_prior;
pub mod draws;
pub mod explore;
pub mod head;
pub mod interval;
pub mod item_prior;
pub mod items;
pub mod metrics;
pub mod ope;
pub mod posterior;
pub mod prior;
pub mod quote;
pub mod retrieval;
pub mod rng;
pub mod similarity;
pub mod taste;
pub mod train;
