//! Stage 4a, retrieval: the context's embedding through a head into the
//! one vector (core `retrieval`) that a vector index over item embeddings
//! searches to find the candidates the head would rank highest.

use crate::encoder::embed::{embed_as, Role};
use crate::encoder::identity::SessionEncoder;
use crate::pg::errors::PgError;
use crate::store::heads::{check_encoder, StoredHead};
use pg_ecom_core::retrieval::item_direction;

/// q such that behaviour `b`'s logit for an item with unit embedding v is
/// q·v plus what does not depend on the item's text.
pub fn query_vector(head: &StoredHead, b: usize, context: &str) -> Vec<f32> {
    // from the manifest, before any model is loaded for nothing
    check_encoder(head, SessionEncoder::current().dims);
    let u = embed_as(&[(Role::Context, context)]);
    check_encoder(head, u[0].len());
    item_direction(&head.head, b, &u[0]).unwrap_or_else(|e| PgError::internal(e).raise())
}
