//! Stage 4a: candidate retrieval — the head's logit as one inner product
//! with the item embedding, so that an approximate-nearest-neighbour index
//! over item embeddings can find what the head would rank highest.
//!
//! Why this works: for a unit item embedding v (pg_ecom's are L2-normalised)
//!   W_b·x = wv·v + wuv·(u⊙v) + w_cos·(u·v)/|u|
//! is linear in v, and so is the taste τ_b·v. Hence
//!   logit_b(u, v) = q·v + (side features, bias, item effect)
//! with q = g_b·(wv + wuv⊙u + w_cos·u/|u|) + τ_b. For unit v, ordering by
//! q·v, by cosine to q and by Euclidean distance to q are the same order,
//! so whichever operator a vector index was built for retrieves the head's
//! own top items by text and taste. Item effects and side features are per
//! item and are applied in the second stage (the ranking).

use crate::head::Head;

/// q: the direction in item-embedding space along which behaviour `b`'s
/// logit for context `u` grows (the gradient of the logit in v, for unit v).
/// Errors when `u` does not have the head's width.
pub fn item_direction(head: &Head, b: usize, u: &[f32]) -> Result<Vec<f32>, String> {
    let d = head.dims();
    if u.len() != d {
        return Err(format!(
            "the context embedding has {} dimensions, the head {}",
            u.len(),
            d
        ));
    }
    let (wv, wuv, w_cos) = head.text_weights(b);
    let gain = head.small(b)[0];
    let tau = head.taste(b);
    let norm = u.iter().map(|a| a * a).sum::<f32>().sqrt();
    // a zero context has no direction: cos(u, v) is 0 in scores_pair
    let c = if norm > 0.0 { w_cos / norm } else { 0.0 };
    Ok((0..d)
        .map(|i| gain * (wv[i] + wuv[i] * u[i] + c * u[i]) + tau[i])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::NB;
    use crate::rng::Rng;

    fn unit(r: &mut Rng, d: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..d)
            .map(|_| (r.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect()
    }

    fn random_head(d: usize, k: usize, seed: u64) -> Head {
        let mut h = Head::new(d, k);
        let mut r = Rng::new(seed);
        for p in h.params.iter_mut() {
            *p = (r.next_u64() % 2001) as f32 / 1000.0 - 1.0;
        }
        h
    }

    #[test]
    fn the_direction_gives_the_logit_up_to_what_does_not_depend_on_the_item_text() {
        let (d, k) = (16, 2);
        let h = random_head(d, k, 3);
        let mut r = Rng::new(7);
        let f = [0.3f32, -1.2];
        for b in 0..NB {
            let u = unit(&mut r, d);
            let q = item_direction(&h, b, &u).unwrap();
            // the part that does not depend on v: side features and bias
            let zero = vec![0f32; d];
            let rest = h.logit_with(b, 0.0, 0.0, &f);
            for _ in 0..20 {
                let v = unit(&mut r, d);
                let (_, z) = h.logit_pair(b, &u, &v, &f, None);
                let dot: f32 = q.iter().zip(&v).map(|(a, c)| a * c).sum();
                assert!(
                    (dot + rest - z).abs() < 1e-4,
                    "b={b}: {dot} + {rest} vs {z}"
                );
            }
            // and a zero item scores the rest alone
            assert!((h.logit_pair(b, &u, &zero, &f, None).1 - rest).abs() < 1e-5);
        }
    }

    #[test]
    fn ordering_by_the_direction_is_the_heads_ordering_of_unit_items() {
        let d = 12;
        let h = random_head(d, 0, 11);
        let mut r = Rng::new(5);
        let u = unit(&mut r, d);
        let items: Vec<Vec<f32>> = (0..200).map(|_| unit(&mut r, d)).collect();
        let q = item_direction(&h, 1, &u).unwrap();
        let qn = q.iter().map(|a| a * a).sum::<f32>().sqrt();
        let order = |key: &dyn Fn(&[f32]) -> f32| {
            let mut idx: Vec<usize> = (0..items.len()).collect();
            idx.sort_by(|&a, &b| key(&items[b]).total_cmp(&key(&items[a])));
            idx
        };
        let by_head = order(&|v| h.logit_pair(1, &u, v, &[], None).1);
        let by_ip = order(&|v| q.iter().zip(v).map(|(a, c)| a * c).sum());
        let by_cos = order(&|v| q.iter().zip(v).map(|(a, c)| a * c).sum::<f32>() / qn);
        let by_l2 = order(&|v| -q.iter().zip(v).map(|(a, c)| (a - c) * (a - c)).sum::<f32>());
        assert_eq!(by_head[..20], by_ip[..20]);
        assert_eq!(by_ip, by_cos);
        assert_eq!(by_head[..20], by_l2[..20]);
    }

    #[test]
    fn a_context_of_the_wrong_width_is_an_error() {
        let h = Head::new(8, 0);
        let e = item_direction(&h, 0, &[0.5; 7]).unwrap_err();
        assert!(e.contains("7 dimensions, the head 8"), "{e}");
    }
}
