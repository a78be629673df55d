//! The kernel test bed: runs bigbro's kernel tests inside a real Debian kernel (IPVS,
//! nf_tables, IPIP, veth, network namespaces) booted under qemu, while they stay ordinary
//! `#[test]`s of a test suite (tests/<suite>/main.rs).
//!
//! ```ignore
//! // In tests/<suite>/main.rs, at the crate root (`kernel_test!` names `crate::testbed`):
//! #[path = "../support/testbed/mod.rs"]
//! mod testbed;
//!
//! // In a module of the suite:
//! use crate::testbed::{self, kernel_test};
//!
//! kernel_test! {
//!     fn fwmark_service_roundtrip() {
//!         // Runs INSIDE the guest, as root, in a fresh network namespace with `lo` up.
//!         testbed::sh("ipvsadm -A -f 7 -s wlc");
//!         assert_eq!(testbed::sh("ipvsadm -S -n"), "-A -f 7 -s wlc\n");
//!     }
//! }
//! ```
//!
//! On the host the first kernel test of a test binary boots one VM (host.rs). The guest
//! mounts the host's root file system read-only over 9p, chroots into it and runs this same
//! test binary once per selected kernel test, with `BIGBRO_TESTBED_GUEST=1`: there the
//! macro runs the body (guest.rs). Each host `#[test]` then reports its own guest result.
//! Every test has a time limit, 120 s unless it declares its own (`kernel_test!`): the
//! guest ends a test that outlives it, and the host kills a VM whose running test has
//! outlived it by a slack.
//! Without qemu or the kernel cache a kernel test prints one loud line and passes, unless
//! `CI` is set, where it fails (host.rs, `prerequisites`). `tests/setup.sh` installs both.
//!
//! The test bed must never touch the host's network state: everything that changes the
//! kernel happens inside the guest.
// Shared by several suites (tests/*/main.rs), each of which uses only part of it.
#![allow(dead_code)]

pub mod dataplane;
mod filter;
mod guest;
mod host;
mod image;

use std::sync::Mutex;

#[allow(unused_imports)]
pub use guest::{
    block_on, loaded_ipvs_modules, modprobe, session_tests, sh, sh_status, time_limit,
};

/// Declares kernel tests: each `fn name() { body }` (or `fn name() -> Result<(), E> {..}`,
/// E: Debug) becomes a `#[test] fn name()` whose body runs inside the test bed's guest
/// kernel. Attributes written before `fn` (doc
/// comments...) are kept on the host test. Not supported: `#[ignore]` (the guest would
/// still run the test) and `#[should_panic]` (the host test itself does not panic); assert
/// on a `Result`, or use `std::panic::catch_unwind`, instead.
///
/// Time limit: a test may run for `DEFAULT_TEST_LIMIT` (120 s; `BIGBRO_TESTBED_TIMEOUT`
/// sets another default for a whole binary) unless it declares its own, in seconds, with
/// `#[time_limit(secs = N)]` written FIRST, before its doc comments and other attributes:
///
/// ```ignore
/// kernel_test! {
///     #[time_limit(secs = 480)]
///     /// A long soak.
///     fn soak() { /* ... */ }
/// }
/// ```
///
/// The guest runner ends the test after N seconds (it fails "timed out after Ns"), the host
/// kills the VM only when that test has run N s plus its slack, and the body can read its
/// limit with `testbed::time_limit()`. A test's own limit wins over
/// `BIGBRO_TESTBED_TIMEOUT`.
macro_rules! kernel_test {
    () => {};
    // A test with a time limit of its own.
    (#[time_limit(secs = $secs:literal)] $(#[$meta:meta])* fn $name:ident() $($rest:tt)*) => {
        $crate::testbed::kernel_test! { @limit(Some($secs)) $(#[$meta])* fn $name() $($rest)* }
    };
    (@limit($limit:expr) $(#[$meta:meta])* fn $name:ident() $body:block $($rest:tt)*) => {
        #[test]
        $(#[$meta])*
        fn $name() {
            $crate::testbed::run_kernel_test(module_path!(), stringify!($name), || $body);
        }

        const _: () = {
            // Runs before main (like the `inventory` crate does), so that the host knows
            // every kernel test of this binary, and its time limit, before the first one
            // boots the VM.
            #[used]
            #[link_section = ".init_array"]
            static REGISTER: extern "C" fn() = {
                extern "C" fn register() {
                    $crate::testbed::register_limited(module_path!(), stringify!($name), $limit);
                }
                register
            };
        };

        $crate::testbed::kernel_test! { $($rest)* }
    };
    (@limit($limit:expr) $(#[$meta:meta])* fn $name:ident() -> $ret:ty $body:block $($rest:tt)*) => {
        $crate::testbed::kernel_test! {
            @limit($limit)
            $(#[$meta])*
            fn $name() {
                #[allow(clippy::redundant_closure_call)]
                let result: $ret = (|| $body)();
                if let Err(e) = result {
                    panic!("{} returned an error: {e:?}", stringify!($name));
                }
            }
            $($rest)*
        }
    };
    // A test with the binary's default time limit.
    ($(#[$meta:meta])* fn $name:ident() $($rest:tt)*) => {
        $crate::testbed::kernel_test! { @limit(None) $(#[$meta])* fn $name() $($rest)* }
    };
}
pub(crate) use kernel_test;

/// Every kernel test in this binary, as libtest names it, with its own time limit in
/// seconds if it declares one.
static REGISTRY: Mutex<Vec<(String, Option<u64>)>> = Mutex::new(Vec::new());

/// The environment variable that tells the test binary it runs inside the guest.
const GUEST_ENV: &str = "BIGBRO_TESTBED_GUEST";

/// Records a kernel test (its libtest name) with the default time limit, before main; for
/// test binaries that drive the test bed without `kernel_test!`.
#[doc(hidden)]
pub fn register(module_path: &str, name: &str) {
    register_limited(module_path, name, None);
}

/// Called before main by every `kernel_test!` function: records its libtest name and the
/// time limit it declares (seconds), if any.
#[doc(hidden)]
pub fn register_limited(module_path: &str, name: &str, limit_secs: Option<u64>) {
    let full = test_name(module_path, name);
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((full, limit_secs));
}

/// Every kernel test this binary holds, sorted by name.
fn registered() -> Vec<String> {
    let mut all: Vec<String> = REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The time limit kernel test `name` declares, in seconds, if it declares one.
fn declared_limit(name: &str) -> Option<u64> {
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, limit)| *limit)
}

/// libtest names a test by its module path without the crate name.
fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{name}"),
        None => name.to_string(),
    }
}

/// The body of every `kernel_test!` function: in the guest, runs the test; on the host,
/// reports the guest's result for it (booting the VM first if no test has yet).
#[doc(hidden)]
pub fn run_kernel_test(module_path: &str, name: &str, body: impl FnOnce()) {
    let name = test_name(module_path, name);
    if std::env::var_os(GUEST_ENV).is_some() {
        guest::run(&name, body);
    } else {
        host::report(&name);
    }
}

/// For ordinary host `#[test]`s that drive the test bed themselves (for example by running
/// this test binary again): true when qemu and the test kernel are there. When they are
/// not, prints the same loud line a kernel test prints and returns false, or panics when
/// `CI` is set.
pub fn host_ready(test: &str) -> bool {
    host::ready(test)
}
