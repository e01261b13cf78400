//! Behaviour events (what `\copy` of the source relation wrote), tokenised
//! once, and the tenant episodes the trainer draws its batches from.

use std::collections::HashMap;

use tokenizers::Tokenizer;

#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub tenant: usize,
    pub context: usize,
    pub item: usize,
    pub behaviour: usize,
    pub label: bool,
}

pub struct Events {
    pub tenants: Vec<String>,
    /// token ids of every distinct text (contexts and items alike)
    pub texts: Vec<Vec<u32>>,
    pub events: Vec<Event>,
}

/// The core's generator (core/src/rng.rs) with a count of its draws: a
/// checkpoint stores (seed, draws), so that a resumed run draws what an
/// unbroken one would.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "Replay", into = "Replay")]
pub struct Rng {
    seed: u64,
    draws: u64,
    inner: pg_ecom_core::rng::Rng,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Replay {
    seed: u64,
    draws: u64,
}

impl From<Replay> for Rng {
    fn from(r: Replay) -> Self {
        let mut rng = Rng::new(r.seed);
        for _ in 0..r.draws {
            rng.inner.next_u64();
        }
        rng.draws = r.draws;
        rng
    }
}

impl From<Rng> for Replay {
    fn from(r: Rng) -> Self {
        Replay {
            seed: r.seed,
            draws: r.draws,
        }
    }
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            draws: 0,
            inner: pg_ecom_core::rng::Rng::new(seed),
        }
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.draws += 1;
        self.inner.below(n)
    }
}

fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "1" | "yes" | "y" | "on" => Some(true),
        "f" | "false" | "0" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Reads `tenant,context,item,behaviour,label` (a header row first) and
/// tokenises each distinct text once, truncated to `max_tokens`. The
/// context and item prefixes are what the encoder's manifest says the
/// extension puts before each role.
pub fn read(
    path: &str,
    tok: &Tokenizer,
    max_tokens: usize,
    prefixes: (&str, &str),
) -> Result<Events, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut tenants: Vec<String> = Vec::new();
    let mut tenant_ix: HashMap<String, usize> = HashMap::new();
    let mut text_ix: HashMap<String, usize> = HashMap::new();
    let mut raw: Vec<String> = Vec::new();
    let mut events = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("{path}: {e}"))?;
        if rec.len() != 5 {
            return Err(format!("{path} row {}: expected 5 columns (tenant, context, item, behaviour, label), found {}", n + 2, rec.len()));
        }
        // untrimmed, as ecom_meta_train reads it
        let behaviour = pg_ecom_core::behaviour::behaviour_index(&rec[3])
            .map_err(|e| format!("{path} row {}: {e}", n + 2))?;
        let Some(label) = parse_label(&rec[4]) else {
            // the extension skips unlabelled rows too
            continue;
        };
        let tenant = *tenant_ix.entry(rec[0].to_owned()).or_insert_with(|| {
            tenants.push(rec[0].to_owned());
            tenants.len() - 1
        });
        let mut text = |s: String| {
            *text_ix.entry(s.clone()).or_insert_with(|| {
                raw.push(s);
                raw.len() - 1
            })
        };
        let context = text(format!("{}{}", prefixes.0, &rec[1]));
        let item = text(format!("{}{}", prefixes.1, &rec[2]));
        events.push(Event {
            tenant,
            context,
            item,
            behaviour,
            label,
        });
    }
    if events.is_empty() {
        return Err(format!("{path} holds no labelled events"));
    }
    let enc = tok
        .encode_batch(raw, true)
        .map_err(|e| format!("tokenizer: {e}"))?;
    let texts = enc
        .iter()
        .map(|e| truncate(e.get_ids(), max_tokens))
        .collect();
    Ok(Events {
        tenants,
        texts,
        events,
    })
}

/// At most `max` ids, keeping [CLS] … and the final [SEP], as the
/// extension's truncation does (src/encoder/tokenize.rs).
pub fn truncate(ids: &[u32], max: usize) -> Vec<u32> {
    if ids.len() <= max || max < 2 {
        return ids.to_vec();
    }
    let mut v = ids[..max - 1].to_vec();
    v.push(ids[ids.len() - 1]);
    v
}

/// Up to `n` of `events`, drawn without replacement, in their order.
pub fn sample(mut events: Vec<usize>, n: usize, rng: &mut Rng) -> Vec<usize> {
    if events.len() > n {
        for i in 0..n {
            let j = i + rng.below(events.len() - i);
            events.swap(i, j);
        }
        events.truncate(n);
        events.sort_unstable();
    }
    events
}

/// Which events train and which judge: whole tenants are held out for
/// validation (as held-out tenants will be judged), or, with one tenant,
/// every tenth event.
pub fn split(ev: &Events, val_share: f64, rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let nt = ev.tenants.len();
    let mut val_tenant = vec![false; nt];
    if val_share <= 0.0 {
        return ((0..ev.events.len()).collect(), Vec::new());
    }
    if nt >= 2 {
        let n_val = ((nt as f64 * val_share).round() as usize).clamp(1, nt - 1);
        let mut order: Vec<usize> = (0..nt).collect();
        for i in (1..nt).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for &t in &order[..n_val] {
            val_tenant[t] = true;
        }
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, e) in ev.events.iter().enumerate() {
        let v = if nt >= 2 {
            val_tenant[e.tenant]
        } else {
            i % 10 == 9
        };
        if v {
            val.push(i)
        } else {
            train.push(i)
        }
    }
    (train, val)
}

/// One tenant episode: a tenant drawn in proportion to its events, then up
/// to `size` of its events. In-batch negatives are then items of the same
/// store, and the batch looks like what a head is judged on: one tenant's
/// ranking.
pub fn episode(
    ev: &Events,
    by_tenant: &[Vec<usize>],
    train: &[usize],
    size: usize,
    rng: &mut Rng,
) -> Vec<usize> {
    let t = ev.events[train[rng.below(train.len())]].tenant;
    let pool = &by_tenant[t];
    if pool.len() <= size {
        return pool.clone();
    }
    let mut idx: Vec<usize> = pool.clone();
    for i in 0..size {
        let j = i + rng.below(idx.len() - i);
        idx.swap(i, j);
    }
    idx.truncate(size);
    idx
}

/// Events drawn across all tenants, without replacement within the batch.
pub fn mixed(train: &[usize], size: usize, rng: &mut Rng) -> Vec<usize> {
    let n = train.len();
    if n <= size {
        return train.to_vec();
    }
    let mut picked = std::collections::HashSet::new();
    while picked.len() < size {
        picked.insert(train[rng.below(n)]);
    }
    let mut out: Vec<usize> = picked.into_iter().collect();
    out.sort_unstable();
    out
}

/// Training events grouped by tenant.
pub fn by_tenant(ev: &Events, train: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); ev.tenants.len()];
    for &i in train {
        out[ev.events[i].tenant].push(i);
    }
    out
}

/// Mean within-tenant AUC (ties count half); tenants with one class only
/// are left out. None when no tenant has both.
pub fn mean_auc(tenants: &[usize], labels: &[bool], scores: &[f32]) -> Option<f64> {
    let mut groups: HashMap<usize, Vec<(f32, bool)>> = HashMap::new();
    for ((t, y), s) in tenants.iter().zip(labels).zip(scores) {
        groups.entry(*t).or_default().push((*s, *y));
    }
    let mut aucs = Vec::new();
    for g in groups.values() {
        let pos: Vec<f32> = g.iter().filter(|p| p.1).map(|p| p.0).collect();
        let neg: Vec<f32> = g.iter().filter(|p| !p.1).map(|p| p.0).collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        let mut wins = 0.0;
        for p in &pos {
            for n in &neg {
                wins += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        aucs.push(wins / (pos.len() * neg.len()) as f64);
    }
    if aucs.is_empty() {
        None
    } else {
        Some(aucs.iter().sum::<f64>() / aucs.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_within_tenant_and_counts_ties_half() {
        // tenant 0 perfectly ranked, tenant 1 reversed, tenant 2 one class
        let t = [0, 0, 1, 1, 2];
        let y = [true, false, true, false, true];
        let s = [0.9, 0.1, 0.1, 0.9, 0.5];
        assert_eq!(mean_auc(&t, &y, &s), Some(0.5));
        assert_eq!(mean_auc(&[0, 0], &[true, false], &[0.3, 0.3]), Some(0.5));
        assert_eq!(mean_auc(&[0], &[true], &[0.3]), None);
    }

    #[test]
    fn a_replayed_generator_draws_on_as_the_unbroken_one() {
        let mut a = Rng::new(42);
        for _ in 0..17 {
            a.below(1000);
        }
        let mut b: Rng = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for _ in 0..50 {
            assert_eq!(a.below(1000), b.below(1000));
        }
    }

    #[test]
    fn truncation_keeps_the_final_separator() {
        assert_eq!(truncate(&[101, 5, 6, 7, 102], 4), vec![101, 5, 6, 102]);
        assert_eq!(truncate(&[101, 5, 102], 4), vec![101, 5, 102]);
    }

    #[test]
    fn a_sample_is_drawn_across_the_events() {
        let all: Vec<usize> = (0..1000).collect();
        let s = sample(all.clone(), 100, &mut Rng::new(3));
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(*s.last().unwrap() > 500, "not just the first events: {s:?}");
        assert_eq!(
            sample(all[..50].to_vec(), 100, &mut Rng::new(3)),
            all[..50].to_vec()
        );
    }

    #[test]
    fn split_holds_out_whole_tenants() {
        let ev = Events {
            tenants: (0..10).map(|i| i.to_string()).collect(),
            texts: vec![],
            events: (0..100)
                .map(|i| Event {
                    tenant: i % 10,
                    context: 0,
                    item: 0,
                    behaviour: 3,
                    label: i % 2 == 0,
                })
                .collect(),
        };
        let (train, val) = split(&ev, 0.2, &mut Rng::new(7));
        assert_eq!(train.len() + val.len(), 100);
        let vt: std::collections::HashSet<usize> =
            val.iter().map(|&i| ev.events[i].tenant).collect();
        assert_eq!(vt.len(), 2);
        assert!(train.iter().all(|&i| !vt.contains(&ev.events[i].tenant)));
    }

    #[test]
    fn episodes_keep_to_one_tenant() {
        let ev = Events {
            tenants: vec!["a".into(), "b".into()],
            texts: vec![],
            events: (0..50)
                .map(|i| Event {
                    tenant: i % 2,
                    context: 0,
                    item: 0,
                    behaviour: 3,
                    label: true,
                })
                .collect(),
        };
        let train: Vec<usize> = (0..50).collect();
        let bt = by_tenant(&ev, &train);
        let mut rng = Rng::new(1);
        for _ in 0..20 {
            let e = episode(&ev, &bt, &train, 8, &mut rng);
            assert_eq!(e.len(), 8);
            let t = ev.events[e[0]].tenant;
            assert!(e.iter().all(|&i| ev.events[i].tenant == t));
            let mut d = e.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 8, "drawn without replacement");
        }
    }
}
