//! Progress of a long call, as NOTICEs every `pg_ecom.progress_interval`
//! (docs/configuration.md, "Progress"). PostgreSQL 15 has no way for an
//! extension to add a `pg_stat_progress_*` view of its own (the command
//! types are core's), so a session reports to its own client, as VACUUM
//! VERBOSE does; a vectorizer's backfill reports in
//! `ecom.vectorizer_status` instead, where any session sees it.
//!
//! A SQL function that can run long opens a `Call`; the work below it
//! (the encoder's batches, training) reports `stage`s and `add`s units
//! done, and `tick`s where it can only say it is still at it. Without an
//! open call, or with the setting 0, each is one check of a flag.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::pg::settings;

struct State {
    call: &'static str,
    stage: Option<Stage>,
    started: Instant,
    last: Instant,
    interval: Duration,
    reported: bool,
}

struct Stage {
    what: String,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The call being reported; ends its reporting when dropped.
pub struct Call {
    owner: bool,
}

/// Opens the reporting of SQL function `name` (nothing when another call
/// is open already, or when `pg_ecom.progress_interval` is 0).
pub fn call(name: &'static str) -> Call {
    let ms = settings::progress_interval_ms();
    let owner = ms > 0 && STATE.with(|s| s.borrow().is_none());
    if owner {
        let now = Instant::now();
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                call: name,
                stage: None,
                started: now,
                last: now,
                interval: Duration::from_millis(ms),
                reported: false,
            })
        });
    }
    Call { owner }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let Some(st) = STATE.with(|s| s.borrow_mut().take()) else {
            return;
        };
        // a closing line only where progress was reported (and not while
        // an ERROR unwinds: the ERROR says how it ended)
        if st.reported && !std::thread::panicking() {
            pgrx::notice!(
                "pg_ecom: {}: done in {}",
                st.call,
                duration(st.started.elapsed())
            );
        }
    }
}

/// Starts a stage of the open call: `total` units of `unit` to do.
pub fn stage(what: &str, unit: &'static str, total: u64) {
    STATE.with(|s| {
        if let Some(st) = s.borrow_mut().as_mut() {
            st.stage = Some(Stage {
                what: what.to_owned(),
                unit,
                total,
                done: 0,
                started: Instant::now(),
            });
        }
    });
}

/// `n` more units of the current stage done.
pub fn add(n: u64) {
    report(n);
}

/// Still working (no count to give).
pub fn tick() {
    report(0);
}

fn report(n: u64) {
    let line = STATE.with(|s| {
        let mut b = s.borrow_mut();
        let st = b.as_mut()?;
        if let Some(g) = st.stage.as_mut() {
            g.done = (g.done + n).min(g.total);
        }
        let now = Instant::now();
        if now.duration_since(st.last) < st.interval {
            return None;
        }
        st.last = now;
        st.reported = true;
        Some(match &st.stage {
            Some(g) if g.total > 0 => {
                let secs = g.started.elapsed().as_secs_f64().max(1e-3);
                let rate = g.done as f64 / secs;
                let left = if rate > 0.0 {
                    format!(
                        ", about {} left",
                        duration(Duration::from_secs_f64((g.total - g.done) as f64 / rate))
                    )
                } else {
                    String::new()
                };
                format!(
                    "pg_ecom: {}: {} {} of {} {} ({:.0} %), {:.0} {}/s{}",
                    st.call,
                    g.what,
                    g.done,
                    g.total,
                    g.unit,
                    100.0 * g.done as f64 / g.total as f64,
                    rate,
                    g.unit,
                    left
                )
            }
            Some(g) => format!(
                "pg_ecom: {}: {}, {} so far",
                st.call,
                g.what,
                duration(st.started.elapsed())
            ),
            None => format!(
                "pg_ecom: {}: running, {} so far",
                st.call,
                duration(st.started.elapsed())
            ),
        })
    });
    if let Some(l) = line {
        pgrx::notice!("{l}");
    }
}

/// "2 min 37 s", "45 s", "1.2 s"
fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else {
        let s = s.round() as u64;
        format!("{} min {} s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(duration(Duration::from_secs(45)), "45 s");
        assert_eq!(duration(Duration::from_secs(157)), "2 min 37 s");
    }
}
