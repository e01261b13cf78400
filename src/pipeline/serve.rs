//! One request's candidates through a head: embeddings (through the cache),
//! the head's logits, the explore policy's ranking (`shown`), and for
//! ecom_serve the log of what was shown (`serve`). Shared by ecom_rank,
//! ecom_serve and off-policy evaluation, so that what is evaluated is
//! exactly what would be served.

use crate::encoder::cache::Embedding;
use crate::encoder::embed::{embed_as, Role};
use std::sync::Arc;

use crate::store::heads::{check_encoder, StoredHead};
use crate::store::impressions::{self, Request, Shown};
use pg_ecom_core::draws::{Item, ItemDraws, Share};
use pg_ecom_core::explore::{self, Policy, Slate};
use pg_ecom_core::items::item_key;
use pg_ecom_core::metrics::sigmoid;
use pg_ecom_core::rng::Rng;

/// The candidates of one request, scored by one head for one behaviour.
pub struct Scored<'a> {
    /// (1-based position in the given list, text) of the non-NULL items
    pub present: Vec<(i32, &'a str)>,
    pub logits: Vec<f64>,
    /// W·x per item: what a posterior draw rescales
    text: Vec<f32>,
    /// per item its key (items.rs): its own effect's uncertainty
    keys: Vec<i64>,
    emb: Vec<Embedding>,
    features: &'a [f32],
    b: usize,
}

impl Scored<'_> {
    pub fn probability(&self, i: usize) -> f64 {
        f64::from(sigmoid(self.logits[i] as f32))
    }

    fn side(&self, i: usize, k: usize) -> &[f32] {
        let at = (self.present[i].0 as usize - 1) * k;
        &self.features[at..at + k]
    }
}

/// Scores `items` (NULLs skipped) for `context`. `features` holds head.k
/// values per given item, NULL or not (checked by the caller). `given`,
/// when the caller has the items' embeddings already (one per given item,
/// checked by the caller), replaces encoding the item texts.
pub fn score<'a>(
    head: &StoredHead,
    b: usize,
    context: &str,
    items: &[Option<&'a str>],
    features: &'a [f32],
    given: Option<&[Embedding]>,
) -> Scored<'a> {
    let present: Vec<(i32, &str)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i as i32 + 1, t)))
        .collect();
    // from the manifest, before any model is loaded for nothing
    check_encoder(
        head,
        crate::encoder::identity::SessionEncoder::current().dims,
    );
    let e = match given {
        None => {
            let mut texts: Vec<(Role, &str)> = Vec::with_capacity(present.len() + 1);
            texts.push((Role::Context, context));
            texts.extend(present.iter().map(|(_, t)| (Role::Item, *t)));
            embed_as(&texts)
        }
        Some(given) => {
            let mut e = embed_as(&[(Role::Context, context)]);
            e.extend(present.iter().map(|(i, _)| given[*i as usize - 1].clone()));
            e
        }
    };
    check_encoder(head, e[0].len());
    let h = &head.head;
    let k = h.k;
    let mut text = Vec::with_capacity(present.len());
    let mut logits = Vec::with_capacity(present.len());
    let mut keys = Vec::with_capacity(present.len());
    for ((i, item), v) in present.iter().zip(&e[1..]) {
        let (s, q) = h.scores_pair(b, &e[0], v);
        let at = (*i as usize - 1) * k;
        let key = item_key(item);
        text.push(s);
        keys.push(key);
        let z = h.logit_with(b, s, q, &features[at..at + k]) + h.items.effect(Some(key), b);
        logits.push(f64::from(z));
    }
    Scored {
        present,
        logits,
        text,
        keys,
        emb: e[1..].to_vec(),
        features,
        b,
    }
}

/// The ranking `policy` shows for `scored`, reproducible from `seed`.
pub fn choose(
    head: &StoredHead,
    scored: &Scored,
    k: usize,
    policy: Policy,
    seed: i64,
    samples: usize,
    between: &mut dyn FnMut(),
) -> Slate {
    let mut rng = Rng::new(seed as u64);
    let hk = head.head.k;
    // Thompson only: the request's items as one Gaussian over their
    // logits, drawn without redrawing every embedding coordinate
    let draws = matches!(policy, Policy::Thompson).then(|| {
        let informed_only = crate::pg::settings::thompson_items_informed_only();
        // the prior the serving version's posterior grew from
        let held = crate::pg::settings::thompson_evidence_only()
            .then(|| crate::store::heads::prior_of(&head.hyper));
        let effects = &head.head.items;
        let items: Vec<Item> = (0..scored.present.len())
            .map(|i| {
                let key = Some(scored.keys[i]);
                Item {
                    logit: scored.logits[i],
                    s: scored.text[i],
                    v: &scored.emb[i],
                    f: scored.side(i, hk),
                    item_var: match held {
                        Some(_) => effects.evidence_variance(key, scored.b),
                        None => effects.draw_variance(key, scored.b, informed_only),
                    },
                    key,
                }
            })
            .collect();
        ItemDraws::new(
            &head.posterior,
            &head.head,
            scored.b,
            &items,
            crate::pg::settings::thompson_taste(),
            held.as_ref().map_or(Share::Posterior, Share::Evidence),
        )
    });
    let optimistic = crate::pg::settings::thompson_optimistic();
    let mut draw = |rng: &mut Rng| -> Vec<f64> {
        match &draws {
            None => scored.logits.clone(),
            Some(d) if optimistic => d.draw_optimistic(rng),
            Some(d) => d.draw(rng),
        }
    };
    explore::choose(
        &scored.logits,
        k,
        policy,
        samples,
        &mut rng,
        &mut draw,
        between,
    )
}

/// A seed for a request that gave none: different in every call.
pub fn fresh_seed() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    // positive, so that it reads the same as a bigint anywhere
    (h.finish() >> 1) as i64
}

/// A request's arguments, checked: the serving head, the policy and seed,
/// and the candidates' side features (head.k per item, flattened).
pub struct Ranking<'a> {
    pub head: Arc<StoredHead>,
    pub items: Vec<Option<&'a str>>,
    pub features: &'a [f32],
    pub k: usize,
    pub b: usize,
    pub policy: Policy,
    pub seed: i64,
    /// the items' embeddings when the caller has them (one per item)
    pub given: Option<Vec<Embedding>>,
}

/// The rows shown for `context`: item_index, item, score (the head's
/// probability), rank, propensity and how exact it is.
pub fn shown(r: &Ranking, context: &str) -> Vec<Shown> {
    let scored = score(
        &r.head,
        r.b,
        context,
        &r.items,
        r.features,
        r.given.as_deref(),
    );
    let chosen = choose(
        &r.head,
        &scored,
        r.k,
        r.policy,
        r.seed,
        crate::pg::settings::propensity_samples(),
        &mut || {
            pgrx::check_for_interrupts!();
        },
    );
    chosen
        .order
        .iter()
        .zip(chosen.propensity.iter().zip(&chosen.propensity_se))
        .enumerate()
        .map(|(place, (&i, (&p, &se)))| Shown {
            item_index: scored.present[i].0,
            item: scored.present[i].1.to_owned(),
            score: scored.probability(i),
            rank: place as i32 + 1,
            propensity: p,
            propensity_se: se,
        })
        .collect()
}

/// ecom_serve: what `shown` ranks, logged (the request and one impression
/// per shown item, in the caller's transaction) with each impression's id.
pub fn serve(tenant: &str, context: &str, k: i32, r: &Ranking) -> Vec<(i64, Shown)> {
    let rows = shown(r, context);
    if rows.is_empty() {
        return Vec::new();
    }
    let req = Request {
        tenant,
        context,
        items: &r.items,
        features: r.features,
        k,
        behaviour: r.b,
        explore: r.policy.name(),
        seed: r.seed,
    };
    let ids = impressions::log(&req, &r.head, &rows);
    ids.into_iter().zip(rows).collect()
}
