//! The loop's settings: how `explore => 'thompson'` draws, what
//! `ecom_learn` asks of a candidate, feedback and learning bounds
//! (docs/configuration.md, docs/loop.md).

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

/// What a Thompson draw does with what no event informed: the taste
/// (`pg_ecom.thompson_taste`; core/src/draws.rs) and the item effects of
/// items without evidence (`pg_ecom.thompson_items`; core/src/items.rs).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ThompsonDraw {
    #[name = c"informed"]
    Informed,
    #[name = c"all"]
    All,
}

/// How much of the posterior a Thompson draw perturbs
/// (`pg_ecom.thompson_draw`; `pg_ecom_core::draws::Share`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ThompsonShare {
    #[name = c"posterior"]
    Posterior,
    #[name = c"evidence"]
    Evidence,
}

/// What `ecom_learn(..., 'if_better')` asks of a candidate before it
/// replaces a version of the tenant's own (`pg_ecom.own_version_evidence`;
/// `pg_ecom_core::ope::Evidence`). Against the global head it is always
/// the interval.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OwnVersionEvidence {
    #[name = c"estimate"]
    Estimate,
    #[name = c"interval"]
    Interval,
}

/// Whose events choose how far a tenant's own item effects, or its base
/// rate, may move (`pg_ecom.item_prior`, `pg_ecom.bias_prior`;
/// `pg_ecom_core::item_prior`, `pg_ecom_core::bias_prior`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChosenBy {
    #[name = c"tenant"]
    Tenant,
    #[name = c"global"]
    Global,
}

pub static EXPLORE_TEMPERATURE: GucSetting<f64> = GucSetting::<f64>::new(1.0);
pub static EXPLORE_EPSILON: GucSetting<f64> = GucSetting::<f64>::new(0.1);
pub static PROPENSITY_SAMPLES: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static THOMPSON_TASTE: GucSetting<ThompsonDraw> =
    GucSetting::<ThompsonDraw>::new(ThompsonDraw::Informed);
pub static OWN_VERSION_EVIDENCE: GucSetting<OwnVersionEvidence> =
    GucSetting::<OwnVersionEvidence>::new(OwnVersionEvidence::Estimate);
pub static THOMPSON_ITEMS: GucSetting<ThompsonDraw> =
    GucSetting::<ThompsonDraw>::new(ThompsonDraw::Informed);
pub static THOMPSON_SHARE: GucSetting<ThompsonShare> =
    GucSetting::<ThompsonShare>::new(ThompsonShare::Evidence);
pub static THOMPSON_OPTIMISTIC: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static FEEDBACK_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static FEEDBACK_IMPLIES: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static LEARN_MAX_IMPRESSIONS: GucSetting<i32> = GucSetting::<i32>::new(20_000);
pub static ITEM_PRIOR: GucSetting<ChosenBy> = GucSetting::<ChosenBy>::new(ChosenBy::Tenant);
pub static BIAS_PRIOR: GucSetting<ChosenBy> = GucSetting::<ChosenBy>::new(ChosenBy::Tenant);

/// The loop (ecom_serve, ecom_feedback, ecom_learn, ecom_evaluate): CPU
/// per call, no memory beyond what max_training_mb bounds.
pub(super) fn register_loop_settings() {
    GucRegistry::define_float_guc(
        c"pg_ecom.explore_temperature",
        c"Temperature of explore => 'softmax' on the head's logits: lower ranks closer to the scores.",
        c"",
        &EXPLORE_TEMPERATURE,
        0.01,
        100.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"pg_ecom.explore_epsilon",
        c"Probability that explore => 'epsilon' shows a uniformly random ranking.",
        c"",
        &EXPLORE_EPSILON,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.thompson_taste",
        c"What a 'thompson' draw does with the taste no logged event informed: 'informed' holds it at its mean, 'all' draws it from the prior.",
        c"'informed' holds only that part of the taste at its mean (every coordinate of it before a tenant has events); everything else (gain, side weights, bias, item effects, the taste along the directions its events span) is drawn from the posterior as under 'all'. Credible intervals include it either way. A seed replays a ranking only under the same setting.",
        &THOMPSON_TASTE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.thompson_items",
        c"What a 'thompson' draw does with the item effects of items the tenant has no evidence on: 'informed' holds them at their mean, 'all' draws them from the prior.",
        c"Items the tenant has learned an effect for are drawn from its posterior either way. Credible intervals include the prior's spread either way. A seed replays a ranking only under the same setting.",
        &THOMPSON_ITEMS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.thompson_draw",
        c"How much of the posterior a 'thompson' draw perturbs: 'evidence', only what the tenant's events said; 'posterior', all of it.",
        c"Under 'evidence' (the default) a draw is the posterior mean with the events' evidence redrawn: nothing moves before a tenant's first event, little after a few, and the draws approach the posterior's as the events outweigh the prior; thompson_taste and thompson_items then change nothing. 'posterior' draws the posterior wherever an event informed it (thompson_taste and thompson_items say what happens where none did), as before 0.17.0. Credible intervals are the posterior's either way. A seed replays a ranking only under the same setting.",
        &THOMPSON_SHARE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_ecom.thompson_optimistic",
        c"Whether an explore => 'thompson' draw raises each item's drawn logit to the head's logit where it falls below (optimistic Thompson sampling).",
        c"On (the default) exploration only promotes items whose draw is higher than their mean: a well-estimated item is never pushed out of the shown places by its own noise. Off draws as before 0.18.0. Credible intervals are the posterior's either way. A seed replays a ranking only under the same setting.",
        &THOMPSON_OPTIMISTIC,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.item_prior",
        c"How far ecom_learn and ecom_adapt let a tenant's own item effects move from the platform's: 'tenant', as far as its own events show they depart (empirical Bayes); 'global', as far as meta-training measured for every tenant.",
        c"Under 'tenant' another precision than meta-training's serves only where it raises the marginal likelihood of the tenant's item rows by 3 nats; where meta-training froze item effects, rows are fitted under precision 1 and serve as the platform's until then. 'global' serves meta-training's for every tenant, as before 0.19.0 (rows learned under 'tenant' are kept, unused). Versions learned before keep serving as they were.",
        &ITEM_PRIOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.bias_prior",
        c"How far ecom_learn and ecom_adapt let a tenant's base rate move from the head they start from: 'tenant', as far as its own events show it departs (empirical Bayes); 'global', as far as meta-training measured for every tenant.",
        c"Under 'tenant' each fit that does not continue a stored posterior (ecom_adapt; ecom_learn until a version of the tenant's own serves, and with since) weighs whether the tenant's events come at the rate the start predicts, and fits under another bias precision only where it raises their marginal likelihood by 3 nats, as where meta-training froze the bias and the tenant clicks far less often than its training events were positive. A learn that continues a version carries what its first fit chose. 'global' fits under meta-training's, as before 0.20.0. Versions learned before keep serving as they were.",
        &BIAS_PRIOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.own_version_evidence",
        c"What ecom_learn's 'if_better' asks before a candidate replaces a version of the tenant's own: 'estimate', a held-out DR estimate above the serving version's; 'interval', the lower end of the difference's 95% interval above 0.",
        c"The interval is asked either way of a tenant's first version to replace the global head, of a refit (since) and while a version rolled back to serves. Under 'estimate' a successor no better than the version serving replaces it about half the time, and one worse by d with probability about Phi(-d/se); under 'interval' about 2.5% of the time, and the serving version lags what was learned since.",
        &OWN_VERSION_EVIDENCE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.propensity_samples",
        c"Rankings drawn to estimate the propensities of 'thompson' and of 'softmax' below the first place.",
        c"The standard error of an estimated propensity is at most 0.5/sqrt(samples).",
        &PROPENSITY_SAMPLES,
        16,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.feedback_window",
        c"How long after an impression its feedback may still arrive: ecom_learn and ecom_evaluate use only impressions older than this.",
        c"An impression with no feedback for its behaviour by then counts as a negative.",
        &FEEDBACK_WINDOW,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"pg_ecom.feedback_implies",
        c"A positive ecom_feedback for a behaviour also records the earlier ones of the funnel (browse < click < cart < purchase) as positive.",
        c"Implied rows never replace a label given explicitly.",
        &FEEDBACK_IMPLIES,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.learn_max_impressions",
        c"Most recent impressions one ecom_learn or ecom_evaluate call reads.",
        c"",
        &LEARN_MAX_IMPRESSIONS,
        1,
        100_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn explore_temperature() -> f64 {
    EXPLORE_TEMPERATURE.get()
}
pub fn explore_epsilon() -> f64 {
    EXPLORE_EPSILON.get()
}
pub fn thompson_taste() -> pg_ecom_core::draws::Taste {
    match THOMPSON_TASTE.get() {
        ThompsonDraw::Informed => pg_ecom_core::draws::Taste::Informed,
        ThompsonDraw::All => pg_ecom_core::draws::Taste::All,
    }
}
/// Whether a Thompson draw holds uninformed item effects at their mean.
pub fn thompson_items_informed_only() -> bool {
    THOMPSON_ITEMS.get() == ThompsonDraw::Informed
}
/// Whether a Thompson draw perturbs only the events' share of the
/// posterior.
pub fn thompson_evidence_only() -> bool {
    THOMPSON_SHARE.get() == ThompsonShare::Evidence
}
/// Whether a Thompson draw only lifts items above their mean.
pub fn thompson_optimistic() -> bool {
    THOMPSON_OPTIMISTIC.get()
}
/// Whether a tenant's own events choose its item prior.
pub fn item_prior_from_events() -> bool {
    ITEM_PRIOR.get() == ChosenBy::Tenant
}
/// Whether a tenant's own events choose its bias prior.
pub fn bias_prior_from_events() -> bool {
    BIAS_PRIOR.get() == ChosenBy::Tenant
}
/// What a candidate must show to replace a version of the tenant's own.
pub fn own_version_evidence() -> pg_ecom_core::ope::Evidence {
    match OWN_VERSION_EVIDENCE.get() {
        OwnVersionEvidence::Estimate => pg_ecom_core::ope::Evidence::Estimate,
        OwnVersionEvidence::Interval => pg_ecom_core::ope::Evidence::Interval,
    }
}
pub fn propensity_samples() -> usize {
    PROPENSITY_SAMPLES.get().max(1) as usize
}
pub fn feedback_window_s() -> i32 {
    FEEDBACK_WINDOW.get().max(0)
}
pub fn feedback_implies() -> bool {
    FEEDBACK_IMPLIES.get()
}
pub fn learn_max_impressions() -> i64 {
    i64::from(LEARN_MAX_IMPRESSIONS.get().max(1))
}
