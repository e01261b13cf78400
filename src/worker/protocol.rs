//! The worker protocol's states and every move between them, in one place.
//! The storage is plain `AtomicU32`s in shared memory (layout.rs); only
//! this file reads or writes them, each time with the memory ordering the
//! move needs.
//!
//! A request slot:
//!
//! ```text
//!            try_claim            submit                take
//!   Free ──────────────▶ Filling ───────▶ Submitted ───────▶ Running
//!    ▲        (backend)          (backend)    ▲      (a worker)   │
//!    │                                        └──── requeue ◀─────┤
//!    │                                                            │ finish
//!    │         release (the backend, once it has read it)         ▼
//!    ├◀──────────────────────────────────────────────────── Done / Failed
//!    │
//!    └◀── free_if_abandoned ── Abandoned ◀── release (backend) of a Running slot
//!          (the worker)
//! ```
//!
//! A worker that stops or restarts puts a Running slot back (requeue) once;
//! a second time it fails it. A backend's `release` frees a slot in any
//! state but Running at once (it owns it there, or no worker has taken it
//! yet); a Running slot it marks Abandoned, and the worker that runs it
//! frees it when done. The slot's `worker` field names the worker that took
//! it: none from submission until a worker has taken it, so a worker
//! restarting never touches a slot that another one just took.
//!
//! A worker's readiness: Loading (also: not running) until it has tried to
//! load its model, then Ready or Failed; Loading again while it reloads,
//! and when it exits.

use std::sync::atomic::Ordering;

use crate::worker::layout::{Shared, Slot, WorkerState};

/// Where a request slot is in its life (diagram above).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotState {
    Free = 0,
    Filling = 1,
    Submitted = 2,
    Running = 3,
    Done = 4,
    Failed = 5,
    Abandoned = 6,
}

impl SlotState {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => SlotState::Free,
            1 => SlotState::Filling,
            2 => SlotState::Submitted,
            3 => SlotState::Running,
            4 => SlotState::Done,
            5 => SlotState::Failed,
            6 => SlotState::Abandoned,
            _ => unreachable!("pg_ecom: slot state {v} is none of the protocol's"),
        }
    }
}

/// The `worker` of a slot no worker has taken.
const NO_WORKER: u32 = u32::MAX;

impl Slot {
    /// The state, to act on: the acquire makes the data that whoever moved
    /// the slot there wrote visible.
    pub fn state(&self) -> SlotState {
        SlotState::from_u32(self.state.load(Ordering::Acquire))
    }

    /// The state, to count or as a hint only (never to touch the data).
    pub fn peek(&self) -> SlotState {
        SlotState::from_u32(self.state.load(Ordering::Relaxed))
    }

    /// Backend: Free → Filling; true when this call claimed it.
    pub fn try_claim(&self) -> bool {
        self.peek() == SlotState::Free
            && self
                .state
                .compare_exchange(
                    SlotState::Free as u32,
                    SlotState::Filling as u32,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Backend: Filling → Submitted, with no worker yet; the release
    /// publishes the request's data (and ticket, submission time) with it.
    pub fn submit(&self) {
        self.worker.store(NO_WORKER, Ordering::Relaxed);
        self.state
            .store(SlotState::Submitted as u32, Ordering::Release);
    }

    /// Backend: gives a slot it owns back: Free at once unless a worker is
    /// running it (Abandoned: that worker frees it when done).
    pub fn release(&self) {
        loop {
            let st = self.state();
            let next = match st {
                SlotState::Running => SlotState::Abandoned,
                SlotState::Free | SlotState::Abandoned => return,
                _ => SlotState::Free,
            };
            if self
                .state
                .compare_exchange(st as u32, next as u32, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Worker `worker`: Submitted → Running, then names itself as the one
    /// that took it; true when this call took it.
    pub fn take(&self, worker: usize) -> bool {
        if self
            .state
            .compare_exchange(
                SlotState::Submitted as u32,
                SlotState::Running as u32,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        self.worker.store(worker as u32, Ordering::Release);
        true
    }

    /// The worker that took it (None from submission until one has). Read
    /// it after `state()`: a slot Running or Abandoned for worker i leaves
    /// that state only through i, and the acquire makes the "no worker" of
    /// its submission visible, so a stale index from an earlier request is
    /// never taken for this one.
    pub fn taken_by(&self) -> Option<usize> {
        match self.worker.load(Ordering::Acquire) {
            NO_WORKER => None,
            w => Some(w as usize),
        }
    }

    /// Worker: Running → Submitted with no worker, for this or another
    /// worker to take; false when the backend abandoned it meanwhile.
    pub fn requeue(&self) -> bool {
        self.worker.store(NO_WORKER, Ordering::Release);
        self.state
            .compare_exchange(
                SlotState::Running as u32,
                SlotState::Submitted as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Worker: Running → Done (`ok`) or Failed, handing the data back to
    /// the backend; false when the backend abandoned it meanwhile.
    pub fn finish(&self, ok: bool) -> bool {
        let to = if ok {
            SlotState::Done
        } else {
            SlotState::Failed
        };
        self.state
            .compare_exchange(
                SlotState::Running as u32,
                to as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Worker: Abandoned → Free; a slot whose backend gave up while a
    /// worker ran it is freed by that worker, and only while it is still
    /// Abandoned.
    pub fn free_if_abandoned(&self) {
        let _ = self.state.compare_exchange(
            SlotState::Abandoned as u32,
            SlotState::Free as u32,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Whether a worker can take requests.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Readiness {
    /// loading its model, or not running
    Loading = 0,
    Ready = 1,
    /// its model failed to load
    Failed = 2,
}

impl WorkerState {
    pub fn readiness(&self) -> Readiness {
        match self.ready.load(Ordering::Acquire) {
            0 => Readiness::Loading,
            1 => Readiness::Ready,
            2 => Readiness::Failed,
            v => unreachable!("pg_ecom: worker readiness {v} is none of the protocol's"),
        }
    }

    pub fn set_readiness(&self, r: Readiness) {
        self.ready.store(r as u32, Ordering::Release);
    }
}

impl Shared {
    /// Ready when a worker is ready, else Failed when one failed to load
    /// its model, else Loading (starting, or none running).
    pub fn readiness(&self) -> Readiness {
        let states: Vec<Readiness> = self.workers().iter().map(|w| w.readiness()).collect();
        if states.contains(&Readiness::Ready) {
            Readiness::Ready
        } else if states.contains(&Readiness::Failed) {
            Readiness::Failed
        } else {
            Readiness::Loading
        }
    }
}
