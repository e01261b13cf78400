//! The per-statement memo of head lookups (`HeadMemo`): what one call
//! site of one statement asked of heads.rs, kept with what the lookup
//! could see, so that scoring many rows costs one SPI query per tenant.
//! Row-level security on ecom.heads is honoured: a policy that reads a
//! setting makes the settings' values part of what a lookup could see.

use pgrx::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

use crate::store::heads::{active_head, no_global_head, StoredHead};

/// What a lookup could see: the active snapshot's bounds, command id and
/// in-progress count, the subtransaction, and the role asking. Used only
/// within one statement's call site (see `HeadMemo`): there it changes when
/// a PL/pgSQL loop moves to a new statement, after our own writes (command
/// id), after ROLLBACK TO SAVEPOINT (new subtransaction) and when another
/// transaction ends between two snapshots (xmin/xmax/xcnt).
///
/// When row-level security applies to the caller on ecom.heads, a policy
/// may read a setting (`current_setting('app.tenant')`) that a PL/pgSQL
/// function changes between two calls at one call site, with the same
/// snapshot: then the values of every custom setting (names with a dot) are
/// part of what the lookup could see as well.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Visibility {
    xmin: u32,
    xmax: u32,
    curcid: u32,
    xcnt: u32,
    subxact: u32,
    user: u32,
    settings: u64,
}

fn visibility(rls: bool) -> Option<Visibility> {
    // SAFETY: reads fields of the active snapshot, which Postgres keeps valid
    // for the duration of the current query. GetActiveSnapshot() must not be
    // called without one (it dereferences the stack's top), hence the check.
    unsafe {
        if !pg_sys::ActiveSnapshotSet() {
            return None;
        }
        let s = pg_sys::GetActiveSnapshot();
        if s.is_null() {
            return None;
        }
        Some(Visibility {
            xmin: (*s).xmin.into_inner(),
            xmax: (*s).xmax.into_inner(),
            curcid: (*s).curcid,
            xcnt: (*s).xcnt,
            subxact: pg_sys::GetCurrentSubTransactionId(),
            user: pg_sys::GetUserId().to_u32(),
            settings: if rls {
                custom_settings_fingerprint()
            } else {
                0
            },
        })
    }
}

/// Whether row-level security policies of ecom.heads apply to the caller.
fn rls_applies() -> bool {
    // SAFETY: catalog lookups by name and oid, with missing_ok / noError.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"ecom".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return false;
        }
        let rel = pg_sys::get_relname_relid(c"heads".as_ptr(), nsp);
        rel != pg_sys::InvalidOid
            && pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true)
                == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// A hash of the current values of all custom settings (placeholders such
/// as `app.tenant` and settings of extensions). A few microseconds; taken
/// only when row-level security applies.
fn custom_settings_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    // SAFETY: the GUC array and its entries belong to this backend and are
    // not changed while we read them (no GUC is set from here); pointers
    // are checked for NULL before use; each entry's vartype says which
    // struct it is.
    unsafe {
        let vars = pg_sys::get_guc_variables();
        let n = pg_sys::GetNumConfigOptions();
        if vars.is_null() {
            return 0;
        }
        for i in 0..n.max(0) as usize {
            let g = *vars.add(i);
            if g.is_null() || (*g).group != pg_sys::config_group::CUSTOM_OPTIONS {
                continue;
            }
            std::ffi::CStr::from_ptr((*g).name).hash(&mut h);
            match (*g).vartype {
                pg_sys::config_type::PGC_STRING => {
                    let v = *(*g.cast::<pg_sys::config_string>()).variable;
                    if !v.is_null() {
                        std::ffi::CStr::from_ptr(v).hash(&mut h);
                    }
                }
                pg_sys::config_type::PGC_INT => {
                    (*(*g.cast::<pg_sys::config_int>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_ENUM => {
                    (*(*g.cast::<pg_sys::config_enum>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_BOOL => {
                    (*(*g.cast::<pg_sys::config_bool>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_REAL => (*(*g.cast::<pg_sys::config_real>()).variable)
                    .to_bits()
                    .hash(&mut h),
                _ => {}
            }
        }
    }
    h.finish()
}

/// Answers of `active_head` for one call site of one statement (kept in the
/// call's `fn_extra`, freed with the statement). Scoring a 10,000-row table
/// asks the same question 10,000 times; all but the first become a hash
/// lookup instead of an SPI query. Never shared across statements, so a
/// row-level-security policy that reads a setting, or a head committed by
/// another session, is seen by the next statement as usual.
#[derive(Default)]
pub struct HeadMemo {
    /// row-level security applied at the last lookup (it can change only
    /// by DDL, which moves the command id or the snapshot)
    rls: bool,
    /// indexed by `own_only`: the answer for the global head (tenant NULL)
    global: [Option<Memo>; 2],
    /// indexed by `own_only`: answers by tenant, looked up by `&str`, so a
    /// row costs a hash and no allocation
    tenants: [HashMap<String, Memo>; 2],
}

type Memo = (Visibility, Option<Arc<StoredHead>>);

impl HeadMemo {
    pub fn active_head(&mut self, tenant: Option<&str>, own_only: bool) -> Option<Arc<StoredHead>> {
        let Some(vis) = visibility(self.rls) else {
            return active_head(tenant, own_only);
        };
        let i = usize::from(own_only);
        let seen = match tenant {
            None => self.global[i].as_ref(),
            Some(t) => self.tenants[i].get(t),
        };
        if let Some((v, h)) = seen {
            if *v == vis {
                return h.clone();
            }
        }
        let rls = rls_applies();
        let vis = if rls == self.rls {
            vis
        } else {
            self.rls = rls;
            visibility(rls).unwrap_or(vis)
        };
        let found = active_head(tenant, own_only);
        let memo = (vis, found.clone());
        match tenant {
            None => self.global[i] = Some(memo),
            Some(t) => {
                let map = &mut self.tenants[i];
                if map.len() >= 1024 {
                    map.clear(); // a statement over very many tenants: stay bounded
                }
                map.insert(t.to_owned(), memo);
            }
        }
        found
    }

    pub fn serving_head(&mut self, tenant: Option<&str>) -> Arc<StoredHead> {
        self.active_head(tenant, false)
            .unwrap_or_else(|| no_global_head())
    }
}
