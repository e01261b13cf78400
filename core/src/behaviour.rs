//! The behaviours pg_ecom predicts, in the order every per-behaviour
//! block of a head, a posterior and item effects is laid out.

pub const BEHAVIOURS: [&str; 4] = ["browse", "click", "cart", "purchase"];
pub const NB: usize = BEHAVIOURS.len();

pub fn behaviour_index(name: &str) -> Result<usize, String> {
    BEHAVIOURS.iter().position(|b| *b == name).ok_or_else(|| {
        format!(
            "unknown behaviour {}; valid behaviours are: {}",
            crate::quote::quoted(name),
            BEHAVIOURS.join(", ")
        )
    })
}
