//! How a setting is declared: once, in one line of a `section!` table, with its key (and
//! the older spellings of it), its type, how its value is read and checked, how a value
//! from `_big_brother` merges under the cluster's, and its default (or why it is
//! required). From that one list the macro generates what used to be written by hand in
//! six places: the raw struct of [`Slot`]s, the list of known keys (which also feeds "did
//! you mean"), the reader that dispatches a key to its field, the defaults merge, and the
//! "settled" struct whose values have their defaults filled in and whose missing required
//! keys are reported on the map that lacks them.
//!
//! A macro rather than a table of descriptors: each setting has its own type (a duration,
//! a scheduler, a nested section), and a table of `dyn` descriptors would need a cast or a
//! `match` per key to get the type back, which is the duplication this file removes.
//!
//! The tables live with their sections: cluster keys, `health:`, `nagios:`, node and vip
//! entries in `raw.rs`, the `bigbro:` section and its `api:` and `sync_daemon:` in
//! `settings.rs`. Sections that `_big_brother` never defaults (nodes, vips, `bigbro:`)
//! write `merge over` too; their merge is simply never called. The key lists a cluster
//! alone can have (`cluster_name`, `fwmark`, `nodes`, `vips`) are not settings: they are
//! read in `raw::cluster`.
//!
//! Adding a key is one line there, plus the model field it ends in (`model.rs`) and the
//! line of `validate.rs` or `settings.rs` that fills it; rules that compare a setting with
//! another (a timeout shorter than the interval, `gue_port` only with `forwarding: gue`)
//! stay in `validate.rs`, since no single line can hold them.
//!
//! Nothing here reads YAML or knows a key's meaning; merging never fills in a default and
//! never reports anything, settling never changes a written value.

use super::diag::{Diags, KeyPath, Pos};
use super::read::{At, Entry, Slot};

/// A section whose keys merge one by one (`health:`, `nagios:`, the cluster settings).
pub(crate) trait Merge {
    /// `self` (the cluster's) over `under` (`_big_brother`'s).
    fn merge(self, under: Self) -> Self;
}

/// A section's keys and how one entry is read: what `section!` generates, so a section can
/// be read generically (see `raw::section`).
pub(crate) trait Section: Default {
    /// Every key, older spellings included.
    const KEYS: &'static [&'static str];
    /// Reads one entry whose key is in [`Section::KEYS`] into its field.
    fn read_entry(&mut self, e: &Entry<'_>, d: &mut Diags);
}

/// A plain value: the cluster's when written, else the default section's.
pub(crate) fn over<T>(cluster: Slot<T>, defaults: Slot<T>) -> Slot<T> {
    cluster.or(defaults)
}

/// A nested map written in both places merges key by key, keeping the cluster's position;
/// otherwise the one written wins.
pub(crate) fn nested<T: Merge>(cluster: Slot<T>, defaults: Slot<T>) -> Slot<T> {
    match (cluster, defaults) {
        (Slot::Given(c), Slot::Given(d)) => Slot::Given(At {
            value: c.value.merge(d.value),
            pos: c.pos,
            path: c.path,
        }),
        (c, d) => c.or(d),
    }
}

/// A nested map that `~` turns off: as [`nested`], and an explicit `~` on the cluster
/// turns a defaulted section off.
pub(crate) fn nested_or_off<T: Merge>(
    cluster: Slot<Option<T>>,
    defaults: Slot<Option<T>>,
) -> Slot<Option<T>> {
    match (cluster, defaults) {
        (
            Slot::Given(At {
                value: Some(c),
                pos,
                path,
            }),
            Slot::Given(At { value: Some(d), .. }),
        ) => Slot::Given(At {
            value: Some(c.merge(d)),
            pos,
            path,
        }),
        (c, d) => c.or(d),
    }
}

/// A value, its default when absent, `None` when invalid (already reported).
pub(crate) fn or_default<T: Clone>(slot: &Slot<T>, default: T) -> Option<T> {
    match slot {
        Slot::Given(at) => Some(at.value.clone()),
        Slot::Absent => Some(default),
        Slot::Invalid => None,
    }
}

/// A required value, or `missing key KEY (WHY)` on the map that should hold it.
pub(crate) fn require<T: Clone>(
    slot: &Slot<T>,
    key: &str,
    why: &str,
    map: (Pos, &KeyPath),
    d: &mut Diags,
) -> Option<T> {
    match slot {
        Slot::Given(at) => Some(at.value.clone()),
        Slot::Invalid => None,
        Slot::Absent => {
            d.at(map.0, map.1, format!("missing key {key} ({why})"));
            None
        }
    }
}

/// Declares a section of settings. Each line:
///
/// ```text
/// /// doc
/// field: Type = ["key" | "older_key"] read READER, merge MERGE, default EXPR;
/// field: Type = ["key"] read READER, merge MERGE, required "why it is needed";
/// ```
///
/// `READER` is a `fn(&Entry, &Slot<Type>, &mut Diags) -> Slot<Type>` (usually a closure):
/// it reads and checks the one value, given what an earlier spelling of the same key left
/// in the slot. `MERGE` is [`over`], [`nested`] or [`nested_or_off`]. A required key's
/// "missing key" message names the first key.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $raw:ident, settled $settled:ident, keys $keys:ident;
        $(
            $(#[$fmeta:meta])*
            $field:ident: $ty:ty = [$key:literal $(| $alias:literal)*]
                read $read:expr, merge $merge:path, $kind:ident $default:expr;
        )*
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub(crate) struct $raw {
            $( $(#[$fmeta])* pub $field: $crate::config::read::Slot<$ty>, )*
        }

        #[doc = concat!("The keys of [`", stringify!($raw), "`], older spellings included.")]
        pub const $keys: &[&str] = &[$($key, $($alias,)*)*];

        #[doc = concat!("[`", stringify!($raw), "`] with defaults filled in: `None` where \
            a value is invalid or a required key missing (both reported).")]
        #[derive(Clone, Debug)]
        #[allow(dead_code)]
        pub(crate) struct $settled {
            $( pub $field: Option<$ty>, )*
        }

        impl $crate::config::declare::Section for $raw {
            const KEYS: &'static [&'static str] = $keys;

            // The fn-pointer binding gives each table closure its argument types.
            #[allow(clippy::redundant_closure_call)]
            fn read_entry(
                &mut self,
                e: &$crate::config::read::Entry<'_>,
                d: &mut $crate::config::diag::Diags,
            ) {
                match e.key {
                    $( $key $(| $alias)* => {
                        let read: fn(
                            &$crate::config::read::Entry<'_>,
                            &$crate::config::read::Slot<$ty>,
                            &mut $crate::config::diag::Diags,
                        ) -> $crate::config::read::Slot<$ty> = $read;
                        self.$field = read(e, &self.$field, d);
                    } )*
                    _ => {}
                }
            }
        }

        impl $raw {
            /// Fills in defaults and reports missing required keys on `map`; `whose` ends
            /// each "why" (e.g. ` for cluster "web"`).
            #[allow(unused_variables)]
            pub(crate) fn settle(
                &self,
                map: ($crate::config::diag::Pos, &$crate::config::diag::KeyPath),
                whose: &str,
                d: &mut $crate::config::diag::Diags,
            ) -> $settled {
                $settled {
                    $( $field: section!(@settle $kind $default; &self.$field, $key, map, whose, d), )*
                }
            }

            /// The same without reporting anything: a missing required key is `None`.
            #[allow(dead_code)]
            pub(crate) fn values(&self) -> $settled {
                let nowhere = $crate::config::diag::KeyPath::root();
                let mut quiet = $crate::config::diag::Diags::new("");
                self.settle((Default::default(), &nowhere), "", &mut quiet)
            }
        }

        impl $crate::config::declare::Merge for $raw {
            fn merge(self, under: Self) -> Self {
                $raw { $( $field: $merge(self.$field, under.$field), )* }
            }
        }
    };
    (@settle default $default:expr; $slot:expr, $key:literal, $map:expr, $whose:expr, $d:expr) => {
        $crate::config::declare::or_default($slot, $default)
    };
    (@settle required $why:expr; $slot:expr, $key:literal, $map:expr, $whose:expr, $d:expr) => {
        $crate::config::declare::require($slot, $key, &format!("{}{}", $why, $whose), $map, $d)
    };
}

pub(crate) use section;
