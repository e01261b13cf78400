//! Stage 5: learning the head — per-tenant adaptation (`adapt`) and
//! meta-training across tenants (`meta`), on the solvers both share
//! (`solvers`) and the validation episodes meta-training judges priors by
//! (`episodes`). Deterministic given a seed.

mod adapt;
mod centred;
mod config;
mod directions;
mod episodes;
mod laplace;
mod meta;
mod newton;
mod platform_items;
mod solvers;
mod taste_basis;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_taste;
mod within;

pub use adapt::{adapt, adapt_with};
pub use config::{AdaptConfig, AdaptReport, Method, Task};
pub use meta::{meta_train, MetaConfig, MetaReport};
pub use platform_items::ItemsReport;
pub use taste_basis::TasteReport;
